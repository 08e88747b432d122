"""Ableton Link timing: a second Link peer, a loop player led by steerbridge's Link session, on the null clock.

Link multicasts on every network interface, so this script runs itself inside
a network namespace with only loopback up (``unshare --net``, needs root) and
refuses to enable Link anywhere else.

Measured (headline figures last, as ``name: value``):

- how far steerbridge's beat clock is from the peer's (both read against ``perf_counter``);
- how far each loop start, as heard, is from the peer's bar lines (the null
  clock's scheduled block times are the truth), before and after the peer
  changes tempo;
- how long the Rubber Band stretch of a 2-bar loop takes (fast and high quality).

    sudo .venv/bin/python benchmarks/link_sync.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _isolated() -> bool:
    return {name for _, name in socket.if_nameindex()} == {"lo"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of playback per tempo (default 20)")
    args = ap.parse_args()
    if not _isolated():
        if os.environ.get("STEERBRIDGE_LINK_NETNS") == "1":
            print("inside the namespace but other interfaces exist: refusing to enable Link", file=sys.stderr)
            return 2
        cmd = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, *sys.argv]
        return subprocess.call(cmd, env={**os.environ, "STEERBRIDGE_LINK_NETNS": "1"})
    sys.path.insert(0, str(ROOT / "tests"))
    return run(args.seconds)


def run(seconds: float) -> int:
    from steerbridge.bridge.audio.bars import BarSync, bar_frames
    from steerbridge.bridge.audio.loops import prepare_loop
    from steerbridge.bridge.audio.player import LoopPlayer
    from steerbridge.bridge.audio.stretch import stretch_loop
    from steerbridge.bridge.live.link import LinkSession
    from support.linkpeer import Peer

    rate, block = 48000, 256
    peer = Peer(97.0)
    link = LinkSession(tempo=120.0).start(wait_for_peers_s=10)
    results: dict[str, float] = {}
    try:
        peer.link.tempo = 97.0
        deadline = time.monotonic() + 5
        while abs(link.status().tempo - 97.0) > 0.01 and time.monotonic() < deadline:
            time.sleep(0.01)
        beat0, bps = peer.timeline(0.5)
        offsets = []
        for _ in range(50):
            t = time.perf_counter()
            offsets.append(abs(link.timeline.beat_at(t) - (beat0 + bps * t)) / bps)
            time.sleep(0.01)
        results["beat_clock_offset_ms_max"] = 1000 * max(offsets)

        player = LoopPlayer(rate=rate)
        sync = BarSync(player, rate=rate, blocksize=block, latency_s=block / rate)
        link.add_timeline_sink(lambda tl: setattr(sync, "timeline", tl))
        nominal: list[float] = []
        wraps: list[tuple[int, int]] = []  # (block index, frame of the loop start in it)
        buf = np.zeros((block, 2), np.float32)

        def play(bpm: float, secs: float) -> list[float]:
            frames = bar_frames(1, bpm, rate)
            sync.bars_by_frames = {**sync.bars_by_frames, frames: 1}
            audio = np.random.default_rng(0).standard_normal((2, frames)).astype(np.float32) * 0.1
            player.set_voices({prepare_loop(audio, source_rate=rate, rate=rate): 1.0}, scene=bpm, swap="now")
            first = len(nominal)
            period, t = block / rate, time.perf_counter()
            end = t + secs
            while t < end:
                nominal.append(t)
                sync.process(buf)
                deck = player._cur  # noqa: SLF001 - the benchmark reads where the loop is
                if deck is not None and deck.pos < block:
                    wraps.append((len(nominal) - 1, block - deck.pos))
                t += period
                wait = t - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            line = peer.timeline(0.3)
            off = []
            for i, f in wraps:
                if i > first + 10:
                    heard = nominal[i] + sync.latency_s + f / rate
                    beat = line[0] + line[1] * heard
                    off.append(abs(beat / 4 - round(beat / 4)) * 4 / line[1])
            return off

        off97 = play(97.0, seconds)
        wraps.clear()
        peer.link.tempo = 126.0
        time.sleep(0.2)
        off126 = play(126.0, seconds)
        results["loop_start_off_bar_ms_max_97bpm"] = 1000 * max(off97)
        results["loop_start_off_bar_ms_max_126bpm"] = 1000 * max(off126)
        results["loop_starts_measured"] = len(off97) + len(off126)
        results["phase_corrections"] = sync.corrections

        two_bars = np.random.default_rng(1).standard_normal((2, bar_frames(2, 97.0, rate))).astype(np.float32)
        for hq in (False, True):
            t = time.perf_counter()
            stretch_loop(two_bars, rate, 126.0 / 97.0, high_quality=hq)
            results[f"stretch_2_bars_{'hq' if hq else 'fast'}_s"] = time.perf_counter() - t
    finally:
        link.close()
        peer.close()
    print(f"block {block} frames at {rate} Hz = {1000 * block / rate:.2f} ms; acceptance: within 1 ms + one block")
    for name, value in results.items():
        print(f"{name}: {value:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
