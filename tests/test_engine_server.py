"""The engine server on loopback: authentication, replay refusal, and 10,000 hostile messages."""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from steerbridge.bridge.engine_link.jobs import RenderJob, RenderResult, render_job_for
from steerbridge.bridge.engine_link.remote import RemoteClient, RemoteRefused
from steerbridge.bridge.engine_link.server import EngineServer, is_loopback
from steerbridge.bridge.engine_link.wire import (WireError, job_from_wire, job_to_wire, load_token, seal, unseal,
                                                 write_new_token)
from steerbridge.bridge.engine_link.worker import JobRunner
from steerbridge.bridge.presets.model import load_preset
from support.engine_fuzz import fuzz_messages, valid_job_header
from support.waiting import wait_for

KEY = b"0123456789abcdef" * 3


def tiny_job(**alphas: float) -> RenderJob:
    preset = load_preset(Path(__file__).resolve().parent.parent / "presets" / "tiny.toml")
    return RenderJob(**{**render_job_for(preset, alphas, seconds=0.5).__dict__, "steps": 3})


@pytest.fixture(scope="module")
def runner():
    return JobRunner("tiny")


@pytest.fixture()
def server(runner):
    srv = EngineServer(runner, bind="tcp://127.0.0.1:0", key=KEY).start()
    yield srv
    srv.stop()


def _local(runner: JobRunner, job: RenderJob) -> np.ndarray:
    events: list = []
    runner.run(0, job, emit=events.append, cancelled=lambda: False)
    return next(e for e in events if isinstance(e, RenderResult)).audio


def test_remote_render_is_bitwise_the_local_one(server, runner) -> None:
    job = tiny_job(mood=1.5)
    assert job.terms, "the job must carry a vector, so the file travels too"
    client = RemoteClient(server.address, key=KEY)
    try:
        info = client.start()
        assert info == runner.info
        (result,) = client.submit(job).future.result(timeout=120).results
    finally:
        client.close()
    local = _local(runner, job)
    assert result.audio.dtype == np.float32 and np.array_equal(result.audio, local)
    assert result.sample_rate == runner.info.sample_rate


def test_wrong_token_is_refused_and_runs_nothing(server) -> None:
    before = server.jobs_run
    client = RemoteClient(server.address, key=b"another-token-of-enough-length!!")
    with pytest.raises(RemoteRefused, match="wrong token") as exc:
        client.start(timeout=10)
    client.close()
    assert exc.value.kind == "AuthError"
    # a job forged without the token: refused before it is parsed
    with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.address)
        sock.send_multipart(seal(b"x" * 32, valid_job_header(1)))
        assert sock.poll(10_000)
        assert sock.recv_multipart()[0] == b""  # the unsigned denial
    assert server.refused["auth"] == 2 and server.jobs_run == before


def test_a_replayed_job_is_refused(server) -> None:
    with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.address)
        sock.send_multipart(seal(KEY, {"type": "hello", "protocol": 1}))
        assert sock.poll(10_000)
        session = unseal(KEY, sock.recv_multipart())[0]["session"]
        job = seal(KEY, {**valid_job_header(7), "session": session, "seq": 1})
        sock.send_multipart(job)
        kinds = []
        while "done" not in kinds and sock.poll(60_000):
            kinds.append(unseal(KEY, sock.recv_multipart())[0]["type"])
        assert "done" in kinds and wait_for(lambda: server.jobs_run == 1)
        sock.send_multipart(job)  # the very same bytes again
        assert sock.poll(10_000)
        reply = unseal(KEY, sock.recv_multipart())[0]
        assert reply["type"] == "error" and "replayed" in reply["error"]
        time.sleep(0.3)
        assert server.jobs_run == 1


def test_ten_thousand_hostile_messages_crash_nothing(server, runner) -> None:
    with zmq.Context() as ctx:
        socks = [ctx.socket(zmq.DEALER) for _ in range(4)]
        for s in socks:
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, 0)
            s.connect(server.address)
        socks[0].send_multipart(seal(KEY, {"type": "hello", "protocol": 1}))
        assert socks[0].poll(10_000)
        session = unseal(KEY, socks[0].recv_multipart())[0]["session"]
        sent = 1
        for i, frames in enumerate(fuzz_messages(KEY, session, count=10_000, seed=18)):
            # the signed jobs carry the live session's seq: they must come from its socket
            (socks[0] if i % 8 == 7 else socks[i % 4]).send_multipart(frames)
            sent += 1
        # raw TCP garbage too (not even ZMTP): zmq drops those connections
        host, port = server.address.removeprefix("tcp://").rsplit(":", 1)
        for n in range(20):
            with socket.create_connection((host, int(port)), timeout=5) as raw:
                raw.sendall(bytes(range(256)) * (n + 1))
        assert wait_for(lambda: server.received >= sent, timeout=120), (server.received, sent)
        for s in socks:
            s.close(0)
    assert server.jobs_run == 0, "a malformed job was rendered"
    assert sum(server.refused.values()) >= 8_000 and server.refused["internal"] == 0, server.refused
    # still serving: a real client renders the same audio as before
    client = RemoteClient(server.address, key=KEY)
    try:
        client.start(timeout=30)
        (result,) = client.submit(tiny_job()).future.result(timeout=120).results
    finally:
        client.close()
    assert np.array_equal(result.audio, _local(runner, tiny_job()))


def test_job_codec_round_trip_and_strictness(tmp_path) -> None:
    job = tiny_job(mood=-0.75)
    names = {}
    wire = job_to_wire(job, lambda p: names.setdefault(p, "ab" * 32))
    back = job_from_wire(wire, lambda sha: next(p for p, n in names.items() if n == sha))
    assert back == job
    with_beat = dataclasses.replace(job, bpm=96.5)  # a beat-conditioned model's tempo travels too
    assert job_from_wire(job_to_wire(with_beat, names.get), lambda sha: next(p for p, n in names.items()
                                                                            if n == sha)) == with_beat
    wire["render"]["bpm"] = 1000
    with pytest.raises(WireError, match="'bpm' must be a finite number in 20..400"):
        job_from_wire(wire, lambda sha: "x")
    wire["render"]["bpm"] = None
    wire["render"]["steps"] = 3.0
    with pytest.raises(WireError, match="'steps' must be an integer"):
        job_from_wire(wire, lambda sha: "x")


def test_bind_and_token_rules(tmp_path, runner) -> None:
    assert is_loopback("tcp://127.0.0.1:5599") and is_loopback("tcp://[::1]:5599")
    assert not is_loopback("tcp://0.0.0.0:5599") and not is_loopback("tcp://*:5599")
    with pytest.raises(ValueError, match="--allow-remote"):
        EngineServer(runner, bind="tcp://0.0.0.0:0", key=KEY)
    token = write_new_token(tmp_path / "t" / "engine.token")
    assert (token.stat().st_mode & 0o777) == 0o600 and len(load_token(token)) == 64
    token.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        load_token(token)
