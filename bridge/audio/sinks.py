"""Where the mix goes: a PortAudio device, WAV files, or nowhere (offline clock).

Every sink drives the same callback, ``process(out)`` of a
:class:`steerbridge.bridge.audio.player.LoopPlayer`:

- :class:`DeviceSink`: a sounddevice ``OutputStream``; PortAudio's thread calls
  ``process``. On machines without a sound card a JACK server with the dummy
  driver gives a real stream (host API "JACK Audio Connection Kit").
- :class:`NullSink`: an offline clock. ``run_blocks(n)`` calls ``process`` n
  times right now (tests: same event schedule, bit-identical output);
  ``start()`` calls it from a thread paced at the real block rate (headless).
- :class:`WavSink`: a paced null clock that also writes every rendered loop to
  ``DIR`` as a float32 WAV (atomically) and tells its listeners the path, so
  the OSC layer can announce "loop ready" to Max/Ableton.

:func:`parse_sink` reads the ``--output`` string ("default", a device name or
index, "wav:DIR", "null"); :func:`open_sink` opens it and, when no device or
no PortAudio is there, falls back to a null (or WAV) sink and says why and
how to fix it, instead of raising.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from steerbridge.bridge.audio.loops import Loop
from steerbridge.bridge.audio.portaudio import JACK_HOSTAPI, SinkUnavailable, import_sounddevice, resolve_output_device
from steerbridge.bridge.audio.wavfile import write_wav

__all__ = [
    "SinkSpec", "Sink", "NullSink", "WavSink", "DeviceSink", "SinkUnavailable",
    "parse_sink", "open_sink", "JACK_HOSTAPI",
]

Process = Callable[[np.ndarray], None]


@dataclass(frozen=True)
class SinkSpec:
    kind: Literal["device", "wav", "null"]
    device: int | str | None = None  # None: the default output (JACK's when it runs)
    directory: Path | None = None  # for "wav"

    def __str__(self) -> str:
        if self.kind == "wav":
            return f"wav:{self.directory}"
        if self.kind == "null":
            return "null"
        return "default" if self.device is None else str(self.device)


def parse_sink(text: str) -> SinkSpec:
    """``"default"`` | device index | device name | ``"wav:DIR"`` | ``"null"``."""
    spec = text.strip()
    if spec.lower() in ("", "default"):
        return SinkSpec("device")
    if spec.lower() == "null":
        return SinkSpec("null")
    if spec.lower().startswith("wav:"):
        directory = spec[4:].strip()
        if not directory:
            raise ValueError(f"output {text!r} names no folder; write it as wav:DIR, e.g. wav:out/loops")
        return SinkSpec("wav", directory=Path(directory).expanduser())
    if re.fullmatch(r"\d+", spec):
        return SinkSpec("device", device=int(spec))
    return SinkSpec("device", device=spec)


class Sink:
    """Base: a clock that calls ``process`` once per block, plus a loop hook."""

    kind = "sink"
    channels = 2

    def __init__(self, *, rate: int, blocksize: int) -> None:
        self.rate, self.blocksize = rate, blocksize
        self.xruns = 0  # blocks the driver or the clock reported late

    @property
    def latency_s(self) -> float:
        """Output latency: from ``process`` writing a block to it being heard."""
        return self.blocksize / self.rate

    def describe(self) -> str:
        return f"{self.kind} @ {self.rate} Hz, {self.blocksize}-frame blocks"

    def start(self, process: Process) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def loop_ready(self, loop: Loop, *, name: str) -> Path | None:
        """A new loop was rendered; sinks that export loops write it (default: nothing)."""
        return None

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NullSink(Sink):
    """Offline clock: ``run_blocks`` for tests, ``start`` for a paced thread."""

    kind = "null"

    def __init__(self, *, rate: int = 48000, blocksize: int = 256, channels: int = 2) -> None:
        super().__init__(rate=rate, blocksize=blocksize)
        self.channels = channels
        self._buf = np.zeros((blocksize, channels), np.float32)  # reused every block
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def run_blocks(self, n: int, process: Process) -> np.ndarray:
        """Call ``process`` ``n`` times now; return the blocks as ``[n*blocksize, channels]``."""
        if self._thread is not None:
            raise RuntimeError("run_blocks() while the paced clock runs; stop() it first")
        out = np.empty((n * self.blocksize, self.channels), np.float32)
        for i in range(n):
            process(self._buf)
            out[i * self.blocksize:(i + 1) * self.blocksize] = self._buf
        return out

    def start(self, process: Process) -> None:
        if self._thread is not None:
            raise RuntimeError("this sink is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(process,), name=f"steerbridge-{self.kind}-clock",
                                        daemon=True)
        self._thread.start()

    def _run(self, process: Process) -> None:
        period = self.blocksize / self.rate
        deadline = time.perf_counter()
        while not self._stopping.is_set():
            process(self._buf)
            deadline += period
            wait = deadline - time.perf_counter()
            if wait > 0:
                self._stopping.wait(wait)
            elif wait < -period:  # fell behind by a whole block: count it, do not burst to catch up
                self.xruns += 1
                deadline = time.perf_counter()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(timeout=5)
            self._thread = None


LoopListener = Callable[[Path, Loop], None]


class WavSink(NullSink):
    """A paced null clock that also writes every rendered loop to ``directory``."""

    kind = "wav"

    def __init__(self, directory: str | os.PathLike[str], *, rate: int = 48000, blocksize: int = 256,
                 channels: int = 2) -> None:
        super().__init__(rate=rate, blocksize=blocksize, channels=channels)
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkUnavailable(f"cannot create WAV folder {self.directory}: {exc.strerror}; "
                                  "pick a writable folder with --output wav:DIR") from None
        self._listeners: list[LoopListener] = []

    def describe(self) -> str:
        return f"WAV files in {self.directory} (clock {self.rate} Hz, {self.blocksize}-frame blocks)"

    def add_listener(self, listener: LoopListener) -> Callable[[], None]:
        """Call ``listener(path, loop)`` after each loop is written; returns a remover."""
        self._listeners = [*self._listeners, listener]

        def remove() -> None:
            self._listeners = [x for x in self._listeners if x is not listener]

        return remove

    def loop_ready(self, loop: Loop, *, name: str) -> Path:
        """Write ``loop`` (at its render rate when known) to ``DIR/name.wav`` atomically,
        as 32-bit float (a DAW polling DIR never sees half a file)."""
        safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "loop"
        path = self.directory / f"{safe}.wav"
        if loop.source is not None and loop.source_rate is not None:
            write_wav(path, loop.source, loop.source_rate)  # the render itself, not a resampled copy
        else:
            write_wav(path, loop.planar(), loop.rate)
        for listener in self._listeners:
            listener(path, loop)
        return path


class DeviceSink(Sink):
    """A PortAudio output stream (sounddevice), opened at construction so errors show early."""

    kind = "device"

    def __init__(self, device: int | str | None = None, *, blocksize: int = 256, latency: float | str | None = None,
                 hostapi: str = "auto", rate: int | None = None, channels: int = 2) -> None:
        sd = import_sounddevice()
        index, info, api = resolve_output_device(sd, device, hostapi=hostapi)
        if info["max_output_channels"] < channels:
            raise SinkUnavailable(f"output device {info['name']!r} has {info['max_output_channels']} channels, "
                                  f"{channels} needed; pick another device")
        super().__init__(rate=int(rate or info["default_samplerate"]), blocksize=blocksize)
        self.channels, self.device_name, self.hostapi = channels, info["name"], api
        self._process: Process = _silence
        self.lost = False  # set when PortAudio ends the stream on its own (device unplugged, server gone)
        self._stopping = False
        try:
            self._stream: Any = sd.OutputStream(
                device=index, samplerate=self.rate, blocksize=blocksize, channels=channels, dtype="float32",
                latency=latency if latency is not None else "low", callback=self._callback,
                finished_callback=self._finished)
        except (sd.PortAudioError, ValueError) as exc:
            raise SinkUnavailable(f"could not open {info['name']!r} ({api}) at {self.rate} Hz, "
                                  f"{blocksize}-frame blocks: {exc}") from None

    @property
    def latency_s(self) -> float:
        return float(self._stream.latency)

    def describe(self) -> str:
        return (f"{self.device_name} ({self.hostapi}) @ {self.rate} Hz, {self.blocksize}-frame blocks, "
                f"latency {self.latency_s * 1000:.1f} ms")

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.output_underflow:
            self.xruns += 1
        self._process(outdata)

    def _finished(self) -> None:
        # NB: runs on PortAudio's thread; a bool store is atomic. The session's
        # housekeeping thread sees it and moves playback to the fallback sink.
        if not self._stopping:
            self.lost = True

    def start(self, process: Process) -> None:
        self._process = process  # NB: an attribute store is atomic; the callback reads it once per block
        self._stream.start()

    def stop(self) -> None:
        self._stopping = True
        if not self._stream.closed:
            self._stream.stop()
            self._stream.close()
        self._process = _silence


def _silence(out: np.ndarray) -> None:
    out.fill(0.0)


def open_sink(spec: SinkSpec | str, *, blocksize: int = 256, latency: float | str | None = None,
              hostapi: str = "auto", rate: int | None = None, fallback: SinkSpec | str = "null",
              log: Callable[[str], None] | None = None) -> Sink:
    """Open ``spec``; if its device or PortAudio is missing, log why and open ``fallback``."""
    spec = parse_sink(spec) if isinstance(spec, str) else spec
    say = log or (lambda msg: print(msg, file=sys.stderr))
    try:
        return _open(spec, blocksize=blocksize, latency=latency, hostapi=hostapi, rate=rate)
    except SinkUnavailable as exc:
        back = parse_sink(fallback) if isinstance(fallback, str) else fallback
        if back.kind == "device":
            raise ValueError(f"fallback {back} is a device; use 'null' or 'wav:DIR'") from None
        sink = _open(back, blocksize=blocksize, latency=None, hostapi=hostapi, rate=rate)
        say(f"steerbridge: audio output {spec} unavailable: {exc}. "
            f"Playing to {back} instead ({sink.describe()}; nothing is audible).")
        return sink


def _open(spec: SinkSpec, *, blocksize: int, latency: float | str | None, hostapi: str, rate: int | None) -> Sink:
    if spec.kind == "null":
        return NullSink(rate=rate or 48000, blocksize=blocksize)
    if spec.kind == "wav":
        assert spec.directory is not None
        return WavSink(spec.directory, rate=rate or 48000, blocksize=blocksize)
    return DeviceSink(spec.device, blocksize=blocksize, latency=latency, hostapi=hostapi, rate=rate)
