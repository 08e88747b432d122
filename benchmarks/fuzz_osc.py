"""OSC fuzzing at volume: >= 100,000 malformed datagrams against a running OscServer.

The server (demo preset, real ControlState) listens on 127.0.0.1 (an
ephemeral port) in this process; the fuzzer sends malformed packets of every
family in :mod:`support.osc_fuzz` over loopback UDP and, every ``--probe-every``
packets, a valid ``/steer/seed`` whose answer must come back. Logging is the
server's real once-per-kind rate limit (first occurrence, then at most one
summary per kind per 10 s).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_osc.py [--packets 100000] [--seed 1]

Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fuzz harness: tests/support/

from steerbridge.bridge.control.osc.server import OscServer  # noqa: E402
from steerbridge.bridge.control.state import ControlState  # noqa: E402
from steerbridge.bridge.presets.model import load_preset  # noqa: E402
from support.osc_fuzz import run_fuzz  # noqa: E402


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.kinds: Counter[str] = Counter()
        self.foreign = 0  # records not from our rate-limited log (python-osc's own warnings, tracebacks)

    def emit(self, record: logging.LogRecord) -> None:
        kind = getattr(record, "osc_kind", None)
        if kind is None:
            self.foreign += 1
        else:
            self.kinds[kind] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--probe-every", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=540.0, help="stop sending after this long")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="steerbridge-fuzz-"))
    shutil.copytree(ROOT / "presets" / "vectors", folder / "vectors")
    shutil.copy(ROOT / "presets" / "demo.toml", folder / "demo.toml")
    counter = _Count()
    logging.getLogger().addHandler(counter)
    logging.getLogger().setLevel(logging.WARNING)
    server = OscServer(ControlState(load_preset(folder / "demo.toml")), port=0, presets_dir=folder).start()
    try:
        report = run_fuzz(server.address, packets=args.packets, seed=args.seed, probe_every=args.probe_every,
                          max_s=args.max_seconds)
        alive = server._thread is not None and server._thread.is_alive()  # noqa: SLF001
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print("families: " + ", ".join(f"{k}={v}" for k, v in sorted(report.by_family.items())), file=sys.stderr)
    print("refused before parsing: " + ", ".join(f"{k}={v}" for k, v in sorted(server.refused.items())),
          file=sys.stderr)
    print("log lines per kind: " + ", ".join(f"{k}={v}" for k, v in sorted(counter.kinds.items())), file=sys.stderr)
    print(f"packets_sent: {report.sent}")
    print(f"elapsed_s: {report.elapsed_s:.1f}")
    print(f"packets_per_s: {report.sent / max(report.elapsed_s, 1e-9):.0f}")
    print(f"crashes: {0 if alive else 1}")
    print(f"valid_probes_sent: {report.probes}")
    print(f"valid_probes_answered: {report.probes_answered}")
    print(f"max_probe_answer_ms: {report.max_probe_s * 1000:.1f}")
    print(f"datagrams_received: {server.accepted + sum(server.refused.values())}")
    print(f"refused_before_parse: {sum(server.refused.values())}")
    print(f"distinct_error_kinds_logged: {len(counter.kinds)}")
    print(f"log_lines: {sum(counter.kinds.values())}")
    print(f"max_log_lines_per_kind: {max(counter.kinds.values(), default=0)}")
    print(f"unrated_log_lines: {counter.foreign}")
    print(f"feedback_dropped: {server.feedback.dropped}")
    return 0 if alive and report.probes_answered == report.probes else 1


if __name__ == "__main__":
    raise SystemExit(main())
