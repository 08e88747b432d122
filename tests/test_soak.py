"""CI soak (~30 s): the simulated set of tests/support/soak.py keeps playing without underruns,
with a bounded cache and bounded memory, and the state follows the MIDI (7-bit, 14-bit, NRPN
bindings of the loaded preset) and OSC sent. The long version: benchmarks/soak.py."""

from __future__ import annotations

import pytest

from support.soak import run_soak


@pytest.mark.slow
def test_thirty_second_soak() -> None:
    report = run_soak(30.0, prompt_every_s=8.0, preset_every_s=12.0, phrase_s=3.0, cache_mb=1.0)
    print("\n".join(report.lines()))
    assert report.seconds >= 30.0 and report.osc_sent > 2000 and report.midi_sent > 2000
    assert report.prompt_changes == 3 and report.preset_changes == 2
    assert report.state_changes > 1000  # the messages really moved the knobs
    # ... to where they were sent: each knob's final value is the last one sent to it (OSC or its MIDI binding)
    assert report.followed and report.knobs_checked >= 3, report.knob_mismatches
    assert report.underruns == 0  # something was always playing
    assert report.worker_restarts == 0 and report.renders_failed == 0
    assert report.renders_completed >= 10  # holds let renders land
    assert report.cache_evictions > 0  # and a 1 MB cache had to evict
    assert report.cache_mb_max <= report.cache_limit_mb  # the LRU limit holds
    # one render in flight (latest wins), plus a cancelled one finishing its diffusion step
    assert report.queue_depth_max <= 2
    assert report.growth_mb(1) < 150 and report.growth_mb(2) < 300, report.rss_mb[-5:]
