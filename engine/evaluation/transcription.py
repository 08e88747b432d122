"""An independent evaluator no one here wrote: Spotify's basic-pitch note transcription.

``basic-pitch`` 0.4.0 ships its ICASSP 2022 model as ONNX inside the wheel
and runs it on onnxruntime (``requirements/basic-pitch.txt``, installed with
``--no-deps`` by ``make install``; it also needs librosa, pretty_midi,
resampy and mir_eval, the ``eval`` extra). Two measures come from it:

- :func:`note_count`: notes transcribed per clip -- tonal clarity. A smeared
  spectral envelope yields few notes; stable partials yield many.
- :func:`transcribed_mode`: major minus minor from the model's *note
  posteriors*, folded to pitch classes frame by frame and matched against the
  24 triad templates exactly as the template-based
  :func:`~steerbridge.engine.evaluation.descriptors.mode_score` matches chroma
  (:func:`~steerbridge.engine.evaluation.descriptors.triad_mode`): positive =
  major. Key-agnostic, and independent of our own chroma front end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import tempfile
import typing as tp

import numpy as np

from steerbridge.engine.evaluation.descriptors import triad_mode

__all__ = ["BasicPitchMissing", "Transcription", "available", "transcribe", "note_count", "transcribed_mode"]

_INSTALL = ("basic-pitch is not installed: pip install -e '.[eval]' && "
            "pip install --no-deps --require-hashes -r requirements/basic-pitch.txt (`make install` does both)")
_MIDI_LOW = 21  # basic-pitch's note posteriors cover the 88 piano keys from A0


class BasicPitchMissing(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Transcription:
    notes: list[tuple[float, float, int, float]]  # (start s, end s, MIDI pitch, amplitude)
    posteriors: np.ndarray  # [frames, 88] note posteriors


def available() -> bool:
    try:
        _model()
    except BasicPitchMissing:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _model() -> tp.Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from basic_pitch import ICASSP_2022_MODEL_PATH, FilenameSuffix, build_icassp_2022_model_path
        from basic_pitch.inference import Model
    except Exception as exc:  # ImportError, or a dependency of it missing
        raise BasicPitchMissing(f"{_INSTALL} ({type(exc).__name__}: {exc})") from exc
    try:
        return Model(build_icassp_2022_model_path(FilenameSuffix.onnx))
    except Exception:
        return Model(ICASSP_2022_MODEL_PATH)


def transcribe(audio: np.ndarray, sr: int) -> Transcription:
    """Notes and note posteriors of mono (or [channels, samples]) float audio."""
    from basic_pitch.inference import predict
    from scipy.io import wavfile

    x = np.asarray(audio, dtype=np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    model = _model()
    with tempfile.TemporaryDirectory(prefix="steerbridge-bp-") as tmp:
        path = os.path.join(tmp, "clip.wav")
        wavfile.write(path, sr, x)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per file
            output, _, events = predict(path, model)
    notes = [(float(s), float(e), int(p), float(a)) for s, e, p, a, *_ in events]
    return Transcription(notes=notes, posteriors=np.asarray(output["note"], dtype=np.float64))


def note_count(audio: np.ndarray, sr: int) -> int:
    return len(transcribe(audio, sr).notes)


def transcribed_mode(audio: np.ndarray, sr: int, *, transcription: Transcription | None = None) -> float:
    """Triad-template major-minor score of basic-pitch's note posteriors (positive = major)."""
    post = (transcription or transcribe(audio, sr)).posteriors
    if post.size == 0:
        return 0.0
    pcs = (np.arange(post.shape[1]) + _MIDI_LOW) % 12
    frames = np.zeros((post.shape[0], 12))
    for pc in range(12):
        frames[:, pc] = post[:, pcs == pc].sum(axis=1)
    return triad_mode(frames)
