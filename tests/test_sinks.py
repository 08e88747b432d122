"""Sinks: parsing, WAV export, fallback, and a real PortAudio stream on JACK."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from steerbridge.bridge.audio.loops import prepare_loop
from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.audio.portaudio import JACK_HOSTAPI, import_sounddevice
from steerbridge.bridge.audio.sinks import DeviceSink, NullSink, SinkSpec, WavSink, open_sink, parse_sink
from support.audio import require_portaudio


def test_parse_sink_strings():
    assert parse_sink("default") == SinkSpec("device") == parse_sink("  ")
    assert parse_sink("null") == SinkSpec("null")
    assert parse_sink("3") == SinkSpec("device", device=3)
    assert parse_sink("system") == SinkSpec("device", device="system")
    assert parse_sink("wav:out/loops") == SinkSpec("wav", directory=Path("out/loops"))
    assert str(parse_sink("wav:out/loops")) == "wav:out/loops"
    with pytest.raises(ValueError, match="wav:DIR"):
        parse_sink("wav:")


def test_wav_sink_writes_each_loop_atomically_and_announces_it(tmp_path):
    sink = WavSink(tmp_path / "loops", rate=48000)
    heard: list[tuple[Path, object]] = []
    sink.add_listener(lambda path, loop: heard.append((path, loop)))
    render = np.random.default_rng(1).standard_normal((2, 22050)).astype(np.float32) * 0.1
    loop = prepare_loop(render, source_rate=44100, rate=48000)
    path = sink.loop_ready(loop, name="happy song / seed 3 / mood=+1.5")
    assert path == tmp_path / "loops" / "happy_song_seed_3_mood_+1.5.wav"
    rate, data = wavfile.read(path)
    assert rate == 44100 and data.dtype == np.float32  # the render itself, 32-bit float
    np.testing.assert_array_equal(data.T, render)
    assert heard == [(path, loop)]
    inode = path.stat().st_ino
    sink.loop_ready(prepare_loop(render * 0, source_rate=44100, rate=48000), name="happy song / seed 3 / mood=+1.5")
    assert path.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert not wavfile.read(path)[1].any()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left


def test_missing_device_falls_back_with_a_message_not_a_traceback(tmp_path):
    messages: list[str] = []
    sink = open_sink("no-such-device-xyz", log=messages.append)
    assert isinstance(sink, NullSink) and sink.kind == "null"
    assert len(messages) == 1
    assert "no-such-device-xyz" in messages[0] and "Playing to null" in messages[0]
    require_portaudio()  # the rest names a host API, which needs PortAudio's list of them
    sink = open_sink("default", hostapi="NoSuchHostApi", fallback=f"wav:{tmp_path}", log=messages.append)
    assert isinstance(sink, WavSink) and sink.directory == tmp_path
    assert "NoSuchHostApi" in messages[1]
    with pytest.raises(ValueError, match="use 'null' or 'wav:DIR'"):
        open_sink("no-such-device-xyz", fallback="default", log=messages.append)


def test_null_clock_paces_blocks_in_real_time():
    player, sink = LoopPlayer(rate=48000), NullSink(rate=48000, blocksize=256)
    sink.start(player.process)
    time.sleep(0.5)
    sink.stop()
    assert 70 <= player.blocks <= 110  # 93.75 blocks in 0.5 s
    with pytest.raises(RuntimeError, match="stop"):
        sink.start(player.process)
        sink.run_blocks(1, player.process)
    sink.stop()


def jack_ports() -> set[str]:
    return set(subprocess.run(["jack_lsp"], capture_output=True, text=True, check=True).stdout.split())


@pytest.mark.jack
def test_real_jack_stream_plays_the_mix_and_follows_the_knob(jack_server):
    sd = import_sounddevice()
    before = jack_ports()
    sink = open_sink("default", hostapi="jack", blocksize=256, log=pytest.fail)
    assert isinstance(sink, DeviceSink) and sink.hostapi == JACK_HOSTAPI and sink.rate == 48000
    # Record our own output through JACK: a second stream's inputs wired to our outputs.
    rec = np.zeros((48000 * 3, 2), np.float32)
    filled = [0]

    def record(indata, frames, time_info, status):
        n = min(frames, len(rec) - filled[0])
        rec[filled[0]:filled[0] + n] = indata[:n]
        filled[0] += n

    mic = sd.InputStream(device=sink._stream.device, samplerate=48000, blocksize=256, channels=2,
                         dtype="float32", callback=record)
    ours = sorted(jack_ports() - before)
    outs, ins = [p for p in ours if ":out_" in p], [p for p in ours if ":in_" in p]
    assert len(outs) == 2 and len(ins) == 2, ours
    player = LoopPlayer(rate=sink.rate)
    tone = (0.5 * np.sin(2 * np.pi * 375 * np.arange(48000) / 48000)).astype(np.float32)  # 128-sample period
    loop = prepare_loop(np.stack([tone, tone]), source_rate=48000, rate=sink.rate)
    player.set_voices({loop: 1.0}, scene="tone")
    try:
        mic.start()
        sink.start(player.process)
        for src, dst in zip(outs, ins):
            subprocess.run(["jack_connect", src, dst], check=True)
        time.sleep(0.6)
        blocks = player.blocks
        seq = player.set_voices({loop: 0.25}, scene="tone")
        t_set = time.perf_counter()
        time.sleep(0.6)
        heard_seq, heard_block, heard_t = player.last_heard()
    finally:
        sink.stop()
        mic.stop()
        mic.close()
    assert heard_seq == seq and heard_block in (blocks, blocks + 1)  # the next block used the new gain
    assert heard_t - t_set < 0.2  # a block is 5.3 ms; slack for a loaded CI machine
    assert 150 <= player.blocks <= 300  # ~1.2 s of 256-frame blocks at 48 kHz (225), driven by JACK
    assert player.stats().underruns == 0
    got = rec[:filled[0], 0]
    loud = np.flatnonzero(np.abs(got) > 0.45)
    assert loud.size > 1000, "our tone never arrived through JACK"
    # Before the knob move the tone peaks at 0.5; a good while after it, at 0.125.
    late = got[loud[0] + int(0.9 * 48000):loud[0] + int(1.0 * 48000)]
    assert np.abs(got[loud[0]:loud[0] + 4800]).max() == pytest.approx(0.5, abs=0.01)
    assert np.abs(late).max() == pytest.approx(0.125, abs=0.01)
    assert not set(outs) & jack_ports()  # our ports are gone once the stream is closed
