"""Ableton Link's beat clock and transport in this process (LinkSession), against a second peer, in a
loopback-only network namespace (support/netns.py); no audio session (tests/test_link.py has those)."""

from __future__ import annotations

import math
import time

import pytest

from support.netns import loopback_only
from support.waiting import wait_for

aalink = pytest.importorskip("aalink", reason="the Link extra is not installed: pip install 'steerbridge[link]'")


@loopback_only
def test_two_peers_agree_on_tempo_and_beat():
    from steerbridge.bridge.live.link import LinkSession
    from support.linkpeer import Peer

    peer = Peer(97.0)
    try:
        with LinkSession(tempo=120.0).start(wait_for_peers_s=10) as ours:
            assert wait_for(lambda: ours.status().peers == 1, timeout=10)
            peer.link.tempo = 97.0
            assert wait_for(lambda: abs(ours.status().tempo - 97.0) < 0.01, timeout=5)
            time.sleep(0.1)
            beat0, bps = peer.timeline(0.3)
            t = time.perf_counter()
            assert abs(ours.timeline.beat_at(t) - (beat0 + bps * t)) / bps < 0.001  # within 1 ms
    finally:
        peer.close()


@loopback_only
def test_a_start_seen_late_still_lands_on_the_bar_line_after_it():
    """A start reaches us a poll (here 80 ms) after the peer asked: one asked just before a bar
    line is seen after it, and must still land on that bar line, not the next one."""
    from steerbridge.bridge.live.link import LinkSession
    from support.linkpeer import Peer

    peer = Peer(120.0)
    try:
        with LinkSession(tempo=120.0, poll_s=0.08).start(wait_for_peers_s=10) as ours:
            assert wait_for(lambda: ours.status().peers == 1, timeout=10)
            for lead in (0.005, 0.04):
                while True:  # wait until the peer's next bar line is `lead` seconds away
                    _, beat = peer.sample()
                    if abs((math.ceil(beat / 4) * 4 - beat) * 0.5 - lead) < 0.002:
                        break
                t_start = time.perf_counter()
                peer.link.playing = True
                assert wait_for(lambda: ours.status().playing, timeout=5)
                time.sleep(0.2)
                beat0, bps = peer.timeline(0.3)
                bar = math.ceil((beat0 + bps * t_start) / 4) * 4  # the peer's first bar line after the start
                tl = ours.timeline
                off_ms = 1000 * (tl.time_at(tl.switch_beat) - (bar - beat0) / bps)
                print(f"start {1000 * lead:.0f} ms before a bar line lands {off_ms:+.2f} ms from it")
                assert abs(off_ms) < 1.0
                peer.link.playing = False
                assert wait_for(lambda: not ours.status().playing, timeout=5)
                time.sleep(0.3)
    finally:
        peer.close()
