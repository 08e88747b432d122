"""Play procedural scores through FluidSynth and a General MIDI SoundFont.

A training-time dependency only: users of the shipped model never need it.
Rendering one clip per ``fluidsynth`` call spends most of its ~0.2 s loading
the 140 MB SoundFont, so :func:`render_scores` writes a whole batch of scores
into one MIDI file, one clip per time slot (with a gap for release tails),
renders it in one call and cuts the slots back out: ~100x faster per clip.
Reverb and chorus are off: the corpus should have clean, stable partials.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from steerbridge.engine.demo.score import BASS_PROGRAM, Score

__all__ = ["SOUNDFONT_PATHS", "FluidSynthMissing", "find_fluidsynth", "render_scores"]

SOUNDFONT_PATHS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")
_INSTALL = ("the demo corpus is rendered with FluidSynth and the FluidR3 General MIDI SoundFont; "
            "install them (Debian/Ubuntu: `sudo apt-get install fluidsynth fluid-soundfont-gm`) or "
            "name a SoundFont with STEERBRIDGE_SOUNDFONT=/path/to/file.sf2")
_TICKS = 960  # per beat at 120 BPM: a tick is 1/1920 s
_GAP = 1.5  # seconds of slot after each clip for note releases


class FluidSynthMissing(RuntimeError):
    pass


def find_fluidsynth() -> tuple[str, str]:
    """(fluidsynth executable, SoundFont path), or :class:`FluidSynthMissing` saying how to install."""
    exe = shutil.which("fluidsynth")
    fonts = [os.environ["STEERBRIDGE_SOUNDFONT"]] if os.environ.get("STEERBRIDGE_SOUNDFONT") else []
    font = next((f for f in [*fonts, *SOUNDFONT_PATHS] if Path(f).is_file()), None)
    if exe is None or font is None:
        missing = "the `fluidsynth` program" if exe is None else "a General MIDI SoundFont"
        raise FluidSynthMissing(f"{missing} was not found: {_INSTALL}")
    return exe, font


def _vlq(n: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [n & 0x7F]
    while n > 0x7F:
        n >>= 7
        out.append((n & 0x7F) | 0x80)
    return bytes(reversed(out))


def _midi_file(scores: list[Score], slot: float) -> bytes:
    """A type-0 Standard MIDI File: clip k's notes start at ``k * slot`` seconds.

    Written by hand (a dozen lines) so the engine needs no MIDI library; the
    tempo is fixed at 120 BPM, so a tick is 1 / (2 * _TICKS) s."""
    per_second = 2 * _TICKS
    events: list[tuple[int, int, bytes]] = [(0, 0, bytes([0xC1, BASS_PROGRAM]))]  # (tick, order, message)
    for k, score in enumerate(scores):
        base = k * slot
        events.append((round(base * per_second), 0, bytes([0xC0, score.program])))
        for n in score.notes:
            on = round((base + n.start) * per_second)
            off = max(on + 1, round((base + n.start + n.duration) * per_second))
            events.append((on, 2, bytes([0x90 | n.channel, n.pitch, n.velocity])))
            events.append((off, 1, bytes([0x80 | n.channel, n.pitch, 0])))  # offs before ons at one tick
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray(b"\x00\xff\x51\x03" + (500_000).to_bytes(3, "big"))  # set tempo: 120 BPM
    now = 0
    for tick, _, msg in events:
        track += _vlq(tick - now) + msg
        now = tick
    track += b"\x00\xff\x2f\x00"  # end of track
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + \
        _TICKS.to_bytes(2, "big")
    return header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


def render_scores(scores: list[Score], *, sample_rate: int, gain: float = 0.3) -> list[np.ndarray]:
    """Mono float32 audio of each score, ``round(score.seconds * sample_rate)`` samples long."""
    from scipy.io import wavfile

    if not scores:
        return []
    exe, font = find_fluidsynth()
    slot = max(s.seconds for s in scores) + _GAP
    with tempfile.TemporaryDirectory(prefix="steerbridge-fluid-") as tmp:
        mid_path, wav_path = Path(tmp) / "batch.mid", Path(tmp) / "batch.wav"
        mid_path.write_bytes(_midi_file(scores, slot))
        cmd = [exe, "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-o", "synth.reverb.active=0",
               "-o", "synth.chorus.active=0", "-o", "synth.cpu-cores=1", "-F", str(wav_path), font, str(mid_path)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wav_path.exists():
            raise RuntimeError(f"fluidsynth failed ({done.returncode}): {done.stderr.strip()[-400:]}")
        sr, pcm = wavfile.read(wav_path)
    audio = pcm.astype(np.float32) / (32768.0 if pcm.dtype == np.int16 else 1.0)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    out = []
    for k, score in enumerate(scores):
        start, n = round(k * slot * sr), round(score.seconds * sr)
        clip = audio[start:start + n]
        out.append(np.pad(clip, (0, n - len(clip))).astype(np.float32))
    return out
