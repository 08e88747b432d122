"""Presets: the TOML files that say which model, which scene and which knobs.

A preset is data (never code): ``[model]`` sampling settings, ``[scene]``
prompt/seed/length and one ``[[knob]]`` table per steering knob. Paths inside a
preset (model folder, vector files) are relative to the preset file.
``load_preset`` validates everything and reports *all* problems at once, each
with the file, the line, the key and what was expected; unknown keys are
errors (a typo must not silently become a default). The schema is documented
in ``presets/demo.toml``.

Knob curves map the normalised knob position ``v`` in 0..1 to a fraction
``t`` of the alpha range (``alpha = alpha_min + t * (alpha_max - alpha_min)``):

- ``linear``: ``t = v``
- ``exp``: ``t = (2**(K*v) - 1) / (2**K - 1)`` with K = 4: fine control near
  ``alpha_min``, fast near ``alpha_max``;
- ``log``: the inverse shape of ``exp``: fast near ``alpha_min``, fine near
  ``alpha_max``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from steerbridge.bridge.presets.schema import (ALPHA_UNITS, CFG_MODES, CURVES, MIDI_MODES, PresetError,
                                               is_vector_file, parse_preset_text, preset_to_toml)
from steerbridge.bridge.presets.tomlscan import scan_lines
from steerbridge.bridge.util.atomic import atomic_write_text
from steerbridge.engine.vocab import (BACKENDS, DEFAULT_ALPHA_UNITS, DEFAULT_CFG_MODE, DEFAULT_CFG_SCALE,
                                      DEFAULT_SECONDS, DEFAULT_STEPS, is_builtin_source)

__all__ = [
    "PresetError", "ModelSettings", "Scene", "MidiBinding", "Knob", "Preset",
    "CURVES", "CFG_MODES", "ALPHA_UNITS", "MIDI_MODES",
    "load_preset", "save_preset", "set_midi_binding",
]

_K = 4.0  # steepness of the exp/log curves (2**4 = 16:1 slope ratio)


@dataclass(frozen=True)
class ModelSettings:
    source: str  # "tiny", "demo" or a folder (relative to the preset as written)
    family: str | None = None  # the folder's model family when its files do not name it (None: recognised)
    device: str = "cpu"
    backend: str = BACKENDS[0]  # "torch" | "onnx" (onnxruntime; needs `steerbridge export-onnx`)
    steps: int = DEFAULT_STEPS
    cfg_scale: float = DEFAULT_CFG_SCALE
    sampler: str | None = None  # None: the model family's default
    cfg_mode: str = DEFAULT_CFG_MODE
    start_step: int = 0
    alpha_units: str = DEFAULT_ALPHA_UNITS


@dataclass(frozen=True)
class Scene:
    prompt: str
    seed: int = 0
    seconds: float = DEFAULT_SECONDS
    negative_prompt: str | None = None
    bars: int = 2  # loop length in bars while Ableton Link sets the tempo (then `seconds` follows)
    link: bool = False  # join Ableton Link when this preset starts a session (needs steerbridge[link])
    bpm: float | None = None  # a model with a beat input plays at this tempo (Link's tempo wins while it is on)


@dataclass(frozen=True)
class MidiBinding:
    """A knob's MIDI source. ``channel`` is 1..16 as printed on hardware.

    ``7bit``: CC ``cc`` (0..127). ``14bit``: MSB on CC ``cc`` (0..31) and LSB
    on ``cc + 32``. ``nrpn``: parameter number ``nrpn`` (0..16383), data entry
    CC 6/38.
    """

    channel: int
    cc: int | None = None
    mode: str = "7bit"
    nrpn: int | None = None


@dataclass(frozen=True)
class Knob:
    name: str
    vector: str = ""  # as written in the preset: relative to the preset file ("" for a tempo knob)
    alpha_min: float = -4.0
    alpha_max: float = 4.0
    curve: str = "linear"
    default: float = 0.5  # normalised knob position 0..1
    stops: int = 5  # pre-rendered alpha stops (>= 2) the player crossfades between
    layers: tuple[int, ...] | None = None  # None: every layer the vector has
    midi: MidiBinding | None = None
    osc: str | None = None  # None: <prefix>/knob/<name>
    orthogonalize_against: tuple[str, ...] = ()  # other knobs' names or vector files (*.safetensors)
    one_to_all: int | None = None
    # "vector": adds its vector at alpha; "bpm": a tempo knob, whose "alpha" is the BPM a model with a
    # beat input plays at (the scene's tempo; a model without one ignores it)
    target: str = "vector"
    # A tempo knob may steer a vector too (a beat model plays a faster beat with the same notes per
    # second; the tempo vector adds the notes): its alpha goes from vector_alpha_min at alpha_min BPM
    # to vector_alpha_max at alpha_max BPM, linearly in the BPM.
    vector_alpha_min: float | None = None
    vector_alpha_max: float | None = None

    @property
    def is_tempo(self) -> bool:
        return self.target == "bpm"

    def vector_alpha(self, alpha: float) -> float:
        """The alpha of the knob's vector when the knob is at ``alpha`` (0: no vector to steer)."""
        if not self.is_tempo:
            return float(alpha)
        if not self.vector or self.vector_alpha_min is None or self.vector_alpha_max is None:
            return 0.0
        t = min(1.0, max(0.0, (float(alpha) - self.alpha_min) / (self.alpha_max - self.alpha_min)))
        a = self.vector_alpha_min + t * (self.vector_alpha_max - self.vector_alpha_min)
        return 0.0 if abs(a) < 1e-9 * max(1.0, abs(self.vector_alpha_max - self.vector_alpha_min)) else a

    def alpha_for(self, value01: float) -> float:
        """Alpha at normalised knob position ``value01`` (clamped to 0..1)."""
        v = min(1.0, max(0.0, float(value01)))
        if self.curve == "exp":
            t = (2.0 ** (_K * v) - 1.0) / (2.0**_K - 1.0)
        elif self.curve == "log":
            t = math.log2(1.0 + v * (2.0**_K - 1.0)) / _K
        else:
            t = v
        return self.alpha_min + t * (self.alpha_max - self.alpha_min)

    def value_for(self, alpha: float) -> float:
        """Inverse of :meth:`alpha_for`; alphas outside the range clamp to 0 or 1."""
        t = (float(alpha) - self.alpha_min) / (self.alpha_max - self.alpha_min)
        t = min(1.0, max(0.0, t))
        if self.curve == "exp":
            return math.log2(1.0 + t * (2.0**_K - 1.0)) / _K
        if self.curve == "log":
            return (2.0 ** (_K * t) - 1.0) / (2.0**_K - 1.0)
        return t

    @property
    def default_alpha(self) -> float:
        return self.alpha_for(self.default)

    def stop_values(self) -> tuple[float, ...]:
        """Knob positions of the stops, evenly spaced in 0..1 (so they follow the curve)."""
        return tuple(i / (self.stops - 1) for i in range(self.stops))

    def stop_alphas(self) -> tuple[float, ...]:
        return tuple(self.alpha_for(v) for v in self.stop_values())

    def bracket(self, value01: float) -> tuple[int, int, float]:
        """The two stops around ``value01`` and the weight of the upper one.

        ``(i, i + 1, w)``: the player mixes stop i with gain for ``1 - w`` and
        stop i + 1 for ``w`` (equal-power gains are the player's business).
        """
        pos = min(1.0, max(0.0, float(value01))) * (self.stops - 1)
        low = min(int(pos), self.stops - 2)
        return low, low + 1, pos - low

    def osc_address(self, prefix: str = "/steer") -> str:
        return self.osc or f"{prefix}/knob/{self.name}"


@dataclass(frozen=True)
class Preset:
    model: ModelSettings
    scene: Scene
    knobs: tuple[Knob, ...] = ()
    path: Path | None = field(default=None, compare=False)  # the file it came from

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def knob(self, name: str) -> Knob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise KeyError(f"no knob named {name!r} in the preset; knobs: {', '.join(self.knob_names())}")

    def knob_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.knobs)

    def resolve(self, relative: str | Path) -> Path:
        """A path written in the preset, made absolute against the preset's folder."""
        return (self.base_dir / Path(relative).expanduser()).resolve()

    def vector_path(self, knob: Knob | str) -> Path:
        return self.resolve((self.knob(knob) if isinstance(knob, str) else knob).vector)

    def ortho_path(self, entry: str) -> Path:
        """The vector file an ``orthogonalize_against`` entry names: another knob's, or a file of its own."""
        return self.resolve(entry) if is_vector_file(entry) else self.vector_path(entry)

    def model_source(self) -> str:
        """``tiny``/``demo``/``tiny:<family>`` as is; a folder made absolute (what ``engine.load_model`` takes)."""
        src = self.model.source
        return src if is_builtin_source(src) else str(self.resolve(src))

    def with_family(self, family: str | None) -> Preset:
        """A copy whose model folder is loaded as ``family`` (what ``--family`` does); None changes nothing."""
        return self if family is None else replace(self, model=replace(self.model, family=family))

    def with_knob(self, knob: Knob) -> Preset:
        """A copy with the knob of the same name replaced."""
        self.knob(knob.name)  # raises for an unknown name
        return replace(self, knobs=tuple(knob if k.name == knob.name else k for k in self.knobs))


def load_preset(path: str | Path, *, check_files: bool = True) -> Preset:
    """Read and validate a preset; raises :class:`PresetError` listing every problem.

    ``check_files``: also require the vector files to exist (off for example
    presets that point at files the user has yet to make).
    """
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PresetError([f"{path}: cannot read the preset ({exc.strerror}); check the path"]) from exc
    return _parse(text, path, check_files=check_files)


def save_preset(preset: Preset, path: str | Path | None = None) -> Preset:
    """Write ``preset`` atomically (as TOML) to ``path`` or to ``preset.path``.

    Relative paths are rewritten relative to the new file when it moves to
    another folder. The text is validated before it replaces the file, so a
    save never leaves an unloadable preset. Comments are not preserved; MIDI
    learn uses :func:`set_midi_binding`, which keeps them.
    """
    target = Path(path if path is not None else _require_path(preset)).expanduser().resolve()
    text = preset_to_toml(asdict(preset), new_dir=target.parent, base_dir=preset.base_dir)
    checked = _parse(text, target, check_files=False)
    atomic_write_text(target, text)
    return checked


def set_midi_binding(preset: Preset, knob_name: str, binding: MidiBinding | None) -> Preset:
    """Persist one knob's MIDI binding into ``preset.path``, keeping comments.

    Replaces the knob's one-line ``midi = {...}`` (or inserts one at the end of
    its ``[[knob]]`` table); falls back to a full :func:`save_preset` when the
    binding is written as a ``[knob.midi]`` sub-table. Returns the new preset.
    """
    path = _require_path(preset)
    new = preset.with_knob(replace(preset.knob(knob_name), midi=binding))
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    scan = scan_lines(text)
    index = preset.knob_names().index(knob_name)
    midi_line = scan.keys.get(("knob", index, "midi"))
    table = scan.tables.get(("knob", index))
    inline = "" if binding is None else f"midi = {_inline_midi(binding)}"
    if midi_line is not None and lines[midi_line - 1].lstrip().startswith("midi"):
        lines[midi_line - 1 : midi_line] = [inline] if inline else []
    elif midi_line is None and table is not None:
        last = table[1]
        while last > table[0] and not lines[last - 1].strip():
            last -= 1  # insert after the table's last non-blank line
        lines[last:last] = [inline] if inline else []
    else:
        return save_preset(new, path)
    edited = "\n".join(lines) + "\n"
    checked = _parse(edited, path, check_files=False)
    if checked != new:  # the edit did not mean what we wanted: rewrite it whole
        return save_preset(new, path)
    atomic_write_text(path, edited)
    return checked


def _inline_midi(binding: MidiBinding) -> str:
    parts = [f"channel = {binding.channel}"]
    if binding.cc is not None:
        parts.append(f"cc = {binding.cc}")
    parts.append(f'mode = "{binding.mode}"')
    if binding.nrpn is not None:
        parts.append(f"nrpn = {binding.nrpn}")
    return "{ " + ", ".join(parts) + " }"


def _require_path(preset: Preset) -> Path:
    if preset.path is None:
        raise PresetError(["this preset was not loaded from a file; pass the path to save it to"])
    return preset.path


def _parse(text: str, path: Path, *, check_files: bool) -> Preset:
    data = parse_preset_text(text, path=path, check_files=check_files)
    knobs = []
    for k in data["knobs"]:
        midi = k.pop("midi")
        knobs.append(Knob(**k, midi=MidiBinding(**midi) if midi is not None else None))
    return Preset(model=ModelSettings(**data["model"]), scene=Scene(**data["scene"]),
                  knobs=tuple(knobs), path=path)
