"""WAV files for rendered loops, written atomically (DAWs may watch the folder)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from steerbridge.bridge.util.atomic import atomic_write_bytes

__all__ = ["write_wav", "read_wav", "slug"]


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """``audio`` float32 ``[channels, samples]`` -> 32-bit float WAV (no clipping, no dither)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    buf = io.BytesIO()
    wavfile.write(buf, int(sample_rate), np.ascontiguousarray(audio.T))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Back to float32 ``[channels, samples]`` and the sample rate."""
    rate, data = wavfile.read(str(path))
    data = np.asarray(data)
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    data = data.astype(np.float32)
    return (data[None] if data.ndim == 1 else data.T), int(rate)


def slug(text: str, *, limit: int = 40) -> str:
    """A file-name-safe short form of a prompt or knob name."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return (s[:limit].rstrip("-") or "untitled")
