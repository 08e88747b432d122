"""Validation of preset TOML text into plain dicts, and back to TOML text.

Kept apart from :mod:`steerbridge.bridge.presets.model` (the value classes and the public API)
so that each stays readable. Every problem becomes one line
``FILE:LINE: KEY: expected ..., got ...``; all problems of a file are reported
together in one :class:`PresetError`.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Callable

import tomli_w

from steerbridge.bridge.presets.tomlscan import KeyPath, TomlLines, scan_lines
from steerbridge.engine.vocab import (ALPHA_UNITS, BACKENDS, CFG_MODES, DEFAULT_ALPHA_UNITS, DEFAULT_CFG_MODE,
                                      DEFAULT_CFG_SCALE, DEFAULT_FAMILY, DEFAULT_SECONDS, DEFAULT_STEPS, MAX_SECONDS,
                                      MAX_STEPS, MAX_BPM, MIN_BPM, TINY_PREFIX, is_builtin_source)

__all__ = ["PresetError", "parse_preset_text", "preset_to_toml", "is_vector_file", "CURVES", "CFG_MODES",
           "ALPHA_UNITS", "MIDI_MODES", "BUILTIN_SOURCES", "KNOB_NAME"]

CURVES = ("linear", "exp", "log")
MIDI_MODES = ("7bit", "14bit", "nrpn")
BUILTIN_SOURCES = ("tiny", "demo")
KNOB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")  # safe inside an OSC address

_MODEL_KEYS = ("source", "family", "device", "backend", "steps", "cfg_scale", "sampler", "cfg_mode", "start_step",
               "alpha_units")
_SCENE_KEYS = ("prompt", "seed", "seconds", "negative_prompt", "bars", "link", "bpm")
_KNOB_KEYS = ("name", "vector", "layers", "alpha_min", "alpha_max", "curve", "default", "stops",
              "midi", "osc", "orthogonalize_against", "one_to_all", "target", "vector_alpha_min", "vector_alpha_max")
KNOB_TARGETS = ("vector", "bpm")
_VECTOR_ONLY = ("layers", "one_to_all", "orthogonalize_against")  # a tempo knob has them only with a vector
_TEMPO_VECTOR = ("vector_alpha_min", "vector_alpha_max")
_MIDI_KEYS = ("channel", "cc", "mode", "nrpn")
_MODEL_FILES = ("model_config.json", "model_index.json", "config.json")  # stable-audio-tools, diffusers, transformers
_MISSING = object()


class PresetError(ValueError):
    """A preset that cannot be used. ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class _Checker:
    """Collects problems with their file and line while reading one preset."""

    def __init__(self, path: Path, lines: TomlLines) -> None:
        self.path, self.lines, self.problems = path, lines, []

    def fail(self, where: KeyPath, message: str) -> None:
        line = self.lines.line(where)
        place = f"{self.path}:{line}" if line else str(self.path)
        name = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in where).replace(".[", "[")
        self.problems.append(f"{place}: {name}: {message}")

    def table(self, value: Any, where: KeyPath, allowed: tuple[str, ...],
              required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"expected a table, got {type(value).__name__} {value!r}")
            return {}
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail((*where, key), f"unknown key; {hint}allowed keys: {', '.join(allowed)}")
        for key in required:
            if key not in value:
                self.fail(where, f"missing required key {key!r}")
        return value

    def get(self, table: dict[str, Any], where: KeyPath, key: str, kind: str | tuple[str, ...],
            default: Any = _MISSING,
            *, check: Callable[[Any], bool] | None = None, expected: str = "") -> Any:
        """Read ``table[key]`` as ``kind`` (str, int, float, bool, int_list, str_list, or
        a tuple of allowed values); returns ``default`` when absent or bad (bad is recorded)."""
        if key not in table:
            return None if default is _MISSING else default
        value = table[key]
        ok, value = _convert(value, kind)
        if ok and check is not None and not check(value):
            ok = False
        if not ok:
            what = expected or _describe(kind)
            self.fail((*where, key), f"expected {what}, got {table[key]!r}")
            return None if default is _MISSING else default
        return value


def is_vector_file(entry: str) -> bool:
    """Whether an ``orthogonalize_against`` entry names a vector file rather than a knob (names have no dots)."""
    return entry.endswith(".safetensors")


def _convert(value: Any, kind: str | tuple[str, ...]) -> tuple[bool, Any]:
    if isinstance(kind, tuple):
        return value in kind, value
    if kind == "str":
        return isinstance(value, str), value
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind == "bool":
        return isinstance(value, bool), value
    if kind == "float":
        good = isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)
        return good, float(value) if good else value
    if kind == "int_list":
        good = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return good, tuple(value) if good else value
    if kind == "str_list":
        good = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return good, tuple(value) if good else value
    raise AssertionError(kind)


def _finite(value: float) -> bool:
    try:  # float() of a TOML integer beyond 1.8e308 raises OverflowError: not a usable number either
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _describe(kind: str | tuple[str, ...]) -> str:
    if isinstance(kind, tuple):
        return "one of " + ", ".join(repr(c) for c in kind)
    return {"str": "a string", "int": "an integer", "float": "a finite number", "bool": "true or false",
            "int_list": "a list of integers", "str_list": "a list of strings"}[kind]


def parse_preset_text(text: str, *, path: Path, check_files: bool) -> dict[str, Any]:
    """Validate preset ``text`` (read from ``path``); returns
    ``{"model": {...}, "scene": {...}, "knobs": [{..., "midi": {...} | None}]}``
    with the keyword arguments of the preset value classes."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError([f"{path}: not valid TOML: {exc}; fix the syntax at that line"]) from exc
    c = _Checker(path, scan_lines(text))
    c.table(raw, (), ("model", "scene", "knob"), required=("model", "scene"))
    model = _model(c, raw.get("model", {}), path, check_files)
    scene = _scene(c, raw.get("scene", {}))
    knobs_raw = raw.get("knob", [])
    if not isinstance(knobs_raw, list):
        c.fail(("knob",), "expected [[knob]] tables (an array of tables), got a single table; write [[knob]]")
        knobs_raw = []
    knobs = [_knob(c, k, i, path, check_files) for i, k in enumerate(knobs_raw)]
    _cross_checks(c, knobs, model)
    if c.problems:
        raise PresetError(c.problems)
    return {"model": model, "scene": scene, "knobs": knobs}


def _model(c: _Checker, t: Any, path: Path, check_files: bool) -> dict[str, Any]:
    w: KeyPath = ("model",)
    t = c.table(t, w, _MODEL_KEYS, required=("source",))
    source = c.get(t, w, "source", "str", "tiny", check=bool,
                   expected="'tiny', 'demo', 'tiny:<family>' or a model folder")
    family = _family(c, t, w, source)
    if check_files and not is_builtin_source(source):
        folder = (path.parent / source).expanduser()
        if family is not None and not folder.is_dir():  # the family's loader says what the folder lacks
            c.fail((*w, "source"), f"expected a model folder, but {folder} is not a folder; fix the path")
        elif family is None and not any((folder / f).is_file() for f in _MODEL_FILES):
            c.fail((*w, "source"), f"expected a folder holding model_config.json + model.safetensors "
                   f"(stable-audio-tools), a diffusers model_index.json or a transformers config.json, but "
                   f"{folder} has none of them; use 'tiny', 'demo', 'tiny:<family>' or fix the path")
    return {
        "source": source,
        "family": family,
        "device": c.get(t, w, "device", "str", "cpu", check=bool, expected="a torch device such as 'cpu'"),
        "backend": c.get(t, w, "backend", "str", BACKENDS[0], check=lambda v: v in BACKENDS,
                         expected="'torch' or 'onnx' (onnxruntime; run `steerbridge export-onnx` first)"),
        "steps": c.get(t, w, "steps", "int", DEFAULT_STEPS, check=lambda v: 1 <= v <= MAX_STEPS,
                       expected=f"an integer 1..{MAX_STEPS}"),
        "cfg_scale": c.get(t, w, "cfg_scale", "float", DEFAULT_CFG_SCALE, check=lambda v: v >= 0,
                           expected="a number >= 0"),
        "sampler": c.get(t, w, "sampler", "str", None, check=bool, expected="a sampler name"),
        "cfg_mode": c.get(t, w, "cfg_mode", CFG_MODES, DEFAULT_CFG_MODE),
        "start_step": c.get(t, w, "start_step", "int", 0, check=lambda v: v >= 0, expected="an integer >= 0"),
        "alpha_units": c.get(t, w, "alpha_units", ALPHA_UNITS, DEFAULT_ALPHA_UNITS),
    }


def _family(c: _Checker, t: dict[str, Any], w: KeyPath, source: str) -> str | None:
    """The ``family`` key: one of the registry's families, and not one that contradicts a built-in source."""
    from steerbridge.engine.adapters.base import families  # the registry; importing it loads no family's code

    known = families()
    family = c.get(t, w, "family", "str", None, check=lambda v: v in known,
                   expected=f"a model family, one of {', '.join(known)}")
    builtin = (source[len(TINY_PREFIX):] if source.startswith(TINY_PREFIX)
               else DEFAULT_FAMILY if source == "demo" else None)
    if family is not None and builtin is not None and family != builtin:
        c.fail((*w, "family"), f"source {source!r} is a {builtin} model, not {family!r}; remove the family key "
               "or give a model folder as the source")
    return family


def _scene(c: _Checker, t: Any) -> dict[str, Any]:
    w: KeyPath = ("scene",)
    t = c.table(t, w, _SCENE_KEYS, required=("prompt",))
    return {
        "prompt": c.get(t, w, "prompt", "str", "", check=lambda v: bool(v.strip()), expected="a non-empty prompt"),
        "seed": c.get(t, w, "seed", "int", 0, check=lambda v: 0 <= v < 2**32, expected="an integer 0..2**32-1"),
        "seconds": c.get(t, w, "seconds", "float", DEFAULT_SECONDS, check=lambda v: 0 < v <= MAX_SECONDS,
                         expected=f"a length in seconds, 0 < seconds <= {MAX_SECONDS:g}"),
        "negative_prompt": c.get(t, w, "negative_prompt", "str", None),
        "bars": c.get(t, w, "bars", "int", 2, check=lambda v: 1 <= v <= 64, expected="a whole number of bars 1..64"),
        "link": c.get(t, w, "link", "bool", False),
        "bpm": c.get(t, w, "bpm", "float", None, check=lambda v: MIN_BPM <= v <= MAX_BPM,
                     expected=f"a tempo in BPM, {MIN_BPM:g}..{MAX_BPM:g}"),
    }


def _knob(c: _Checker, t: Any, i: int, path: Path, check_files: bool) -> dict[str, Any]:
    w: KeyPath = ("knob", i)
    t = c.table(t, w, _KNOB_KEYS, required=("name",))
    name = c.get(t, w, "name", "str", f"knob{i}", check=lambda v: KNOB_NAME.fullmatch(v) is not None,
                 expected="a name of letters, digits, '_' or '-' starting with a letter (it becomes an OSC address)")
    tempo = c.get(t, w, "target", KNOB_TARGETS, "vector") == "bpm"
    if tempo:
        _tempo_keys(c, t, w)
    elif "vector" not in t:
        c.fail(w, "missing required key 'vector' (or target = \"bpm\" for a tempo knob)")
    for key in _TEMPO_VECTOR if not tempo else ():
        if key in t:
            c.fail((*w, key), f"{key} is the vector's alpha at a tempo knob's ends; this knob's alpha is its "
                   "vector's (use alpha_min / alpha_max), or make it a tempo knob (target = \"bpm\")")
    vector = c.get(t, w, "vector", "str", "", check=bool, expected="a vector file path relative to the preset")
    ortho = c.get(t, w, "orthogonalize_against", "str_list", ())
    for key, file in [("vector", vector), *(("orthogonalize_against", o) for o in ortho if is_vector_file(o))]:
        if check_files and file and not (path.parent / file).expanduser().is_file():
            c.fail((*w, key), f"vector file {(path.parent / file)} does not exist; "
                   "make it with `steerbridge extract` or fix the path (relative to the preset)")
    bpm = dict(check=lambda v: MIN_BPM <= v <= MAX_BPM,
               expected=f"a tempo in BPM, {MIN_BPM:g}..{MAX_BPM:g}") if tempo else {}
    knob = {
        "name": name, "vector": vector, "target": "bpm" if tempo else "vector",
        "alpha_min": c.get(t, w, "alpha_min", "float", 70.0 if tempo else -4.0, **bpm),
        "alpha_max": c.get(t, w, "alpha_max", "float", 160.0 if tempo else 4.0, **bpm),
        "curve": c.get(t, w, "curve", CURVES, "linear"),
        "default": c.get(t, w, "default", "float", 0.5, check=lambda v: 0 <= v <= 1,
                         expected="a normalised knob position 0..1"),
        "stops": c.get(t, w, "stops", "int", 5, check=lambda v: 2 <= v <= 64, expected="an integer 2..64"),
        "layers": c.get(t, w, "layers", "int_list", None, check=lambda v: bool(v) and min(v) >= 0
                        and len(set(v)) == len(v), expected="a non-empty list of distinct layer indices >= 0"),
        "osc": c.get(t, w, "osc", "str", None, check=lambda v: v.startswith("/") and not re.search(r"[\s#*?,\[\]{}]", v),
                     expected="an OSC address starting with '/' without spaces or wildcards"),
        "orthogonalize_against": ortho,
        "one_to_all": c.get(t, w, "one_to_all", "int", None, check=lambda v: v >= 0, expected="a layer index >= 0"),
        "midi": _midi(c, t["midi"], (*w, "midi")) if "midi" in t else None,
        **{key: c.get(t, w, key, "float", None) for key in _TEMPO_VECTOR},
    }
    if knob["alpha_min"] == knob["alpha_max"]:
        c.fail((*w, "alpha_max"), f"expected alpha_max different from alpha_min ({knob['alpha_min']}); "
               "the knob would do nothing")
    return knob


def _tempo_keys(c: _Checker, t: dict[str, Any], w: KeyPath) -> None:
    """A tempo knob (``target = "bpm"``) has a tempo range for its alpha range; it steers a vector
    only when it names one, and then with both ends of that vector's alpha range."""
    if "vector" in t:
        for key in _TEMPO_VECTOR:
            if key not in t:
                c.fail(w, f"missing required key '{key}' for a tempo knob with a vector: the vector's alpha at "
                       f"{'alpha_min' if key.endswith('min') else 'alpha_max'} BPM")
    else:
        for key in (*_VECTOR_ONLY, *_TEMPO_VECTOR):
            if key in t:
                c.fail((*w, key), f"a tempo knob (target = \"bpm\") without a vector sets only the tempo, so "
                       f"{key} means nothing; remove it, or give the knob a vector to steer with the tempo")
    for key in ("alpha_min", "alpha_max"):
        if key not in t:
            c.fail(w, f"missing required key '{key}' for a tempo knob: a tempo in BPM, {MIN_BPM:g}..{MAX_BPM:g}")


def _midi(c: _Checker, t: Any, w: KeyPath) -> dict[str, Any] | None:
    t = c.table(t, w, _MIDI_KEYS, required=("channel",))
    mode = c.get(t, w, "mode", MIDI_MODES, "7bit")
    midi = {
        "channel": c.get(t, w, "channel", "int", 1, check=lambda v: 1 <= v <= 16, expected="a MIDI channel 1..16"),
        "mode": mode,
        "cc": c.get(t, w, "cc", "int", None, check=lambda v: 0 <= v <= (31 if mode == "14bit" else 127),
                    expected="a CC number 0..31 (14-bit: the MSB; the LSB is cc + 32)" if mode == "14bit"
                    else "a CC number 0..127"),
        "nrpn": c.get(t, w, "nrpn", "int", None, check=lambda v: 0 <= v <= 16383, expected="an NRPN number 0..16383"),
    }
    if mode == "nrpn" and "nrpn" not in t:
        c.fail(w, "mode 'nrpn' needs the key nrpn (parameter number 0..16383)")
    if mode != "nrpn" and "cc" not in t:
        c.fail(w, f"mode {mode!r} needs the key cc")
    if mode != "nrpn" and "nrpn" in t:
        c.fail((*w, "nrpn"), f"nrpn is only used with mode = 'nrpn' (mode is {mode!r}); remove it or set the mode")
    return midi


def _cross_checks(c: _Checker, knobs: list[dict[str, Any]], model: dict[str, Any]) -> None:
    names = [k["name"] for k in knobs]
    for i, knob in enumerate(knobs):
        if names.index(knob["name"]) != i:
            c.fail(("knob", i, "name"), f"knob name {knob['name']!r} is used twice; names must be unique")
        for other in knob["orthogonalize_against"]:
            if is_vector_file(other):
                continue  # a vector file (checked with the knob's own file): e.g. a tempo vector beside a tempo knob
            if other == knob["name"] or other not in names:
                c.fail(("knob", i, "orthogonalize_against"),
                       f"expected names of other knobs ({', '.join(n for n in names if n != knob['name']) or 'none'}) "
                       f"or vector files (*.safetensors), got {other!r}")
            elif (ref := knobs[names.index(other)]).get("target") == "bpm" and not ref.get("vector"):
                c.fail(("knob", i, "orthogonalize_against"), f"knob {other!r} sets the tempo and has no vector "
                       "to orthogonalise against; use the tempo vector file's path instead, or give the knob a "
                       "vector (with vector_alpha_min / vector_alpha_max)")
        if knob.get("target") == "bpm" and [k.get("target") for k in knobs[:i]].count("bpm"):
            c.fail(("knob", i, "target"), "a preset has at most one tempo knob")
    seen: dict[tuple[Any, ...], str] = {}
    for i, knob in enumerate(knobs):
        m = knob["midi"]
        if m is None:
            continue
        ident = (m["channel"], m["mode"] == "nrpn", m["nrpn"] if m["mode"] == "nrpn" else m["cc"])
        if ident in seen:
            c.fail(("knob", i, "midi"), f"same MIDI control as knob {seen[ident]!r}; give each knob its own")
        seen.setdefault(ident, knob["name"])


def preset_to_toml(data: dict[str, Any], *, new_dir: Path, base_dir: Path) -> str:
    """TOML text for ``dataclasses.asdict(preset)``; paths re-based from ``base_dir`` to ``new_dir``."""

    def rebase(p: str) -> str:
        if os.path.isabs(p) or new_dir == base_dir:
            return p
        return os.path.relpath((base_dir / p).resolve(), new_dir)

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        # TOML has no null: absent keys mean "default"; tuples become arrays.
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()
                if v is not None and v != ()}

    model = clean(data["model"])
    if not is_builtin_source(model["source"]):
        model["source"] = rebase(model["source"])
    knobs = []
    for k in data["knobs"]:
        knob = clean(k)
        if knob.pop("target") == "bpm":
            knob["target"] = "bpm"
        if knob["vector"]:
            knob["vector"] = rebase(knob["vector"])
        else:
            del knob["vector"]  # a tempo knob without a vector
        if "orthogonalize_against" in knob:
            knob["orthogonalize_against"] = [rebase(o) if is_vector_file(o) else o
                                             for o in knob["orthogonalize_against"]]
        if "midi" in knob:
            knob["midi"] = clean(knob["midi"])
        knobs.append(knob)
    doc = {"model": model, "scene": clean(data["scene"]), "knob": knobs}
    return tomli_w.dumps(doc)
