"""The remote engine from the user's side: `engine-server` in its own process, `--engine tcp://...` clients.

- `render --engine` writes the very bytes a local render writes; a wrong token fails clearly;
  `doctor --engine` reports the server's model, or why it could not use it.
- A live session on a remote engine survives the server being killed mid-render: the
  null clock keeps playing the cached loop with no underrun, `/steer/state/engine` says
  `disconnected`, the client reconnects when a server is back on the port and the
  re-queued exact render lands.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from steerbridge.bridge.engine_link.jobs import Progress
from steerbridge.bridge.engine_link.wire import write_new_token
from steerbridge.bridge.live.monitor import SessionMonitor
from steerbridge.bridge.live.session import Session, SessionEvent, SessionOptions
from support.waiting import wait_for

PRESET = """\
[model]
source = "tiny"
steps = {steps}

[scene]
prompt = "remote loop"
seed = 5
seconds = 1.0

[[knob]]
name = "mood"
vector = "mood.safetensors"
alpha_min = -2.0
alpha_max = 2.0
default = 0.5
stops = 2
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start_server(token: Path, port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "steerbridge.bridge", "engine-server", "--model", "tiny",
                             "--bind", f"tcp://127.0.0.1:{port}", "--token-file", str(token), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())
    line = proc.stdout.readline()
    assert line, f"engine-server exited with {proc.wait()}"
    return proc, json.loads(line)["address"]


@pytest.fixture()
def token(tmp_path) -> Path:
    return write_new_token(tmp_path / "engine.token")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "steerbridge.bridge", *args], capture_output=True, text=True,
                          env=_env(), timeout=600)


# Several processes that each import torch: minutes on a loaded 2-core machine, so these tests get
# a longer pytest timeout than the default 300 s (none of them asserts speed).
SLOW = pytest.mark.timeout(1500)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@SLOW
def test_render_over_the_network_writes_the_local_render_bitwise(tmp_path, token) -> None:
    proc, address = start_server(token, _free_port())
    try:
        common = ["render", "--preset", "tiny", "--knob", "mood=0.9", "--steps", "3", "--seconds", "0.5", "--json"]
        remote = _cli(*common, "--out", str(tmp_path / "remote"), "--engine", address, "--engine-token", str(token))
        assert remote.returncode == 0, remote.stderr
        local = _cli(*common, "--out", str(tmp_path / "local"))
        assert local.returncode == 0, local.stderr
        (rfile,), (lfile,) = (json.loads(r.stdout)["files"] for r in (remote, local))
        assert Path(rfile["path"]).read_bytes() == Path(lfile["path"]).read_bytes()
        other = write_new_token(tmp_path / "other.token")
        refused = _cli(*common, "--out", str(tmp_path / "refused"), "--engine", address, "--engine-token", str(other))
        assert refused.returncode == 2 and "wrong token" in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "refused").exists()
        ok = _cli("doctor", "--json", "--engine", address, "--engine-token", str(token))
        assert ok.returncode == 0, ok.stderr
        report = json.loads(ok.stdout)["remote_engine"]
        assert report["authenticated"] and report["model"] == "tiny" and len(report["fingerprint"]) == 32
        bad = _cli("doctor", "--json", "--engine", address, "--engine-token", str(other))
        report = json.loads(bad.stdout)["remote_engine"]
        assert bad.returncode == 1 and report["reachable"] and not report["authenticated"]
        assert "wrong token" in report["error"]
    finally:
        stop(proc)


@pytest.fixture()
def preset_file(tmp_path, tiny_model) -> Path:
    from steerbridge import engine

    vec = engine.extract_caa(tiny_model, positive=["happy"], negative=["sad"], concept="mood", seconds=0.5, steps=2)
    engine.save_vector(vec, tmp_path / "mood.safetensors")
    (tmp_path / "preset.toml").write_text(PRESET.format(steps=60))  # long renders: time to kill one midway
    return tmp_path / "preset.toml"


class OscWatch:
    """Subscribes to a session's OSC feedback and keeps every /steer/state/engine phase (its first argument)."""

    def __init__(self, session: Session) -> None:
        self.engine: list[str] = []
        dispatcher = Dispatcher()
        dispatcher.map("/steer/state/engine", lambda _a, phase, *_detail: self.engine.append(phase))
        self._server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        host, port = session.surfaces.osc.address
        SimpleUDPClient(host, port).send_message("/steer/subscribe", self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@SLOW
def test_session_keeps_playing_through_a_server_loss_and_finishes_the_requeued_job(preset_file, token) -> None:
    port = _free_port()
    proc, address = start_server(token, port)
    options = SessionOptions(output="null", osc="127.0.0.1:0", midi=None, engine=address,
                             engine_token_file=str(token), grid="none", progress=False)
    events: list[SessionEvent] = []
    session = Session(preset_file, options=options, say=lambda _m: None)
    watch = None
    try:
        session.subscribe(events.append)
        session.start(timeout=300)
        watch = OscWatch(session)
        assert wait_for(lambda: watch.engine[:1] == ["ready"], 10), watch.engine  # told on subscribing
        midway = threading.Event()
        session.client.add_listener(lambda e: midway.set() if isinstance(e, Progress) and e.done >= 3 else None)
        loops_before = sum(e.kind == "loop" for e in events)
        blocks = session.player.stats().blocks
        session.set_knob("mood", 0.8)  # an exact render of a new alpha starts
        assert midway.wait(120), "the exact render never started"
        proc.kill()  # SIGKILL mid-render: no goodbye
        proc.wait(timeout=60)
        assert wait_for(lambda: "disconnected" in watch.engine, 30), watch.engine
        assert not session.status().engine_alive
        monitor = SessionMonitor(session)
        view = monitor.engine()  # what the panel's status strip shows
        monitor.close()
        assert not view.alive and view.down == "disconnected" and view.device == address
        assert any(e.kind == "error" and e.source == "engine" and "lost the engine server" in e.message
                   for e in events)
        assert sum(e.kind == "loop" for e in events) == loops_before  # the killed render did not land
        proc, _ = start_server(token, port)  # the GPU box comes back on the same port
        assert wait_for(lambda: watch.engine[-1:] == ["connected"], 60), watch.engine
        assert wait_for(lambda: sum(e.kind == "loop" for e in events) > loops_before, 180), "re-queued job lost"
        stats = session.player.stats()
        assert stats.blocks > blocks and stats.underruns == 0, stats
        # >= 1: on a machine loaded to a standstill a ping can go unanswered for 5 s (a needless reconnect)
        assert session.status().engine_alive and session.client.restarts >= 1
    finally:
        if watch is not None:
            watch.close()
        session.close()
        proc.kill()
        proc.wait(timeout=60)


@SLOW
def test_engine_flag_mistakes_are_said_before_anything_starts(tmp_path) -> None:
    bad_address = _cli("serve", "--preset", "tiny", "--output", "null", "--engine", "127.0.0.1:5599")
    assert bad_address.returncode == 2 and "write tcp://HOST:PORT" in bad_address.stderr
    missing = _cli("serve", "--preset", "tiny", "--output", "null", "--engine", "tcp://127.0.0.1:5599",
                   "--engine-token", str(tmp_path / "nope.token"))
    assert missing.returncode == 2 and "nope.token does not exist" in missing.stderr
    shared = write_new_token(tmp_path / "shared.token")
    shared.chmod(0o644)
    readable = _cli("render", "--preset", "tiny", "--engine", "tcp://127.0.0.1:5599", "--engine-token", str(shared))
    assert readable.returncode == 2 and "chmod 600" in readable.stderr and "Traceback" not in readable.stderr
    for extra in ([], ["--allow-remote"]):  # beyond loopback: both the flag and an explicit token file
        exposed = _cli("engine-server", "--bind", "tcp://0.0.0.0:5599", *extra)
        assert exposed.returncode == 2 and "--allow-remote and --token-file" in exposed.stderr


NETNS_CLIENT = """\
import sys
from steerbridge.bridge.engine_link.jobs import RenderJob
from steerbridge.bridge.engine_link.remote import RemoteClient
from steerbridge.bridge.engine_link.wire import load_token
client = RemoteClient(sys.argv[1], key=load_token(sys.argv[2]))
info = client.start(timeout=60)
(result,) = client.submit(RenderJob(prompt="lan", seconds=0.5, steps=2)).future.result(timeout=120).results
client.close()
print(info.fingerprint, result.audio.shape)
"""


@SLOW
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare (a private network namespace)")
def test_a_non_loopback_bind_serves_a_client_holding_the_token(tmp_path, token) -> None:
    # A private network namespace: 10.213.0.1 is put on its own loopback device, so the
    # server really listens on a non-loopback address and no packet leaves the namespace.
    (tmp_path / "client.py").write_text(NETNS_CLIENT)
    address, py = "tcp://10.213.0.1:5599", sys.executable
    script = (f"ip link set lo up && ip addr add 10.213.0.1/32 dev lo || exit 77\n"
              f"{py} -m steerbridge.bridge engine-server --model tiny --bind {address} --allow-remote "
              f"--token-file {token} --json > {tmp_path}/ready 2>/dev/null & server=$!\n"
              f"for i in $(seq 600); do [ -s {tmp_path}/ready ] && break; sleep 0.2; done\n"
              f"{py} {tmp_path}/client.py {address} {token}; code=$?\n"
              "kill -TERM $server; wait $server; exit $code\n")
    out = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, env=_env(),
                         timeout=600)
    if out.returncode == 77:
        pytest.skip(f"cannot set up a network namespace here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr[-2000:]
    ready = json.loads((tmp_path / "ready").read_text().splitlines()[0])
    assert ready["address"] == address
    fingerprint, shape = out.stdout.split(maxsplit=1)
    assert fingerprint == ready["fingerprint"] and shape.strip() == "(2, 8000)"
