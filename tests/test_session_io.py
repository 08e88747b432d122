"""Session edges: OSC address parsing and the pre-render progress count."""

from __future__ import annotations

import pytest

from steerbridge.bridge.live.progress import PrerenderProgress, lower_priority
from steerbridge.bridge.live.surfaces import parse_host_port


def test_parse_host_port():
    assert parse_host_port("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_host_port(":9001") == ("127.0.0.1", 9001)
    assert parse_host_port("9002") == ("127.0.0.1", 9002)
    assert parse_host_port("0.0.0.0:0") == ("0.0.0.0", 0)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port("localhost:nine")
    with pytest.raises(ValueError, match="0..65535"):
        parse_host_port("localhost:70000")


def test_progress_counts_even_with_the_bar_disabled_and_grows_its_total():
    ticks: list[tuple[int, int]] = []
    progress = PrerenderProgress(enabled=False, on_tick=lambda d, t: ticks.append((d, t)))
    progress.tick()  # outside run(): ignored
    with progress.run(2):
        for _ in range(3):
            progress.tick()
    assert ticks == [(1, 2), (2, 2), (3, 3)]


def test_lower_priority_renices_every_thread_of_a_process():
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import threading, time\n"
                              "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
                              "print('up', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "up"
        lower_priority(child.pid, 7)
        tids = os.listdir(f"/proc/{child.pid}/task")
        assert len(tids) >= 2
        for tid in tids:
            assert os.getpriority(os.PRIO_PROCESS, int(tid)) == 7
    finally:
        child.kill()
        child.wait()
    lower_priority(child.pid, 7)  # gone: no error
