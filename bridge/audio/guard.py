"""CallbackGuard: a bug in the mix costs one silent block, never the stream.

PortAudio ends a stream whose callback raises, and the session would then read
that as "the output device went away" and switch to the fallback sink. The
guard sits between the sink's clock and ``LoopPlayer.process``: an exception
fills the block with silence and is counted; the first one of each kind is
kept so a control thread (the session's housekeeping) can report it once.
The next block calls ``process`` again: a transient fault heals by itself,
a persistent one stays silent and counted, and the stream keeps running.

On the audio thread the guard only stores a reference and bumps a counter
(the exception object already exists); formatting happens in
:meth:`take_reports`, on the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["CallbackGuard"]

Process = Callable[[np.ndarray], None]
_KINDS_KEPT = 8  # distinct faults remembered for reporting; beyond that they are only counted


class CallbackGuard:
    """Wrap ``process(out)``: exceptions become silence, a count, and one report per kind."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.errors = 0  # NB: only the audio thread writes it
        self._first: list[BaseException] = []  # NB: appended on the audio thread, read by take_reports
        self._reported = 0

    def __call__(self, out: np.ndarray) -> None:
        try:
            self.process(out)
        except Exception as exc:  # noqa: BLE001 - any bug in the mix must cost one block, not the stream
            out.fill(0.0)
            self.errors += 1
            if len(self._first) < _KINDS_KEPT and not any(
                    type(e) is type(exc) and e.args == exc.args for e in self._first):
                self._first.append(exc)  # NB: a list append is atomic under the GIL

    def take_reports(self) -> list[str]:
        """Messages for faults not reported yet (each kind once), for a control thread."""
        new = self._first[self._reported:]
        self._reported += len(new)
        return [f"{type(exc).__name__} in the audio callback: {exc}; the block was silenced "
                f"({self.errors} silent block{'s' if self.errors != 1 else ''} so far). "
                "This is a bug in steerbridge: please report it with the log." for exc in new]
