"""Fuzzing the preset and vector-file loaders: one clear error type, never anything else.

Presets: hypothesis-made TOML (random text, random documents over the real
keys, line edits of the demo preset) either load or raise PresetError whose
every problem names the file and says what to do; a failed load over OSC
leaves the running ControlState exactly as it was. Vector files: byte
mutations of a real vector file (header, metadata JSON, tensor bytes) either
load or raise VectorFileError naming the file.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pythonosc.osc_message_builder import build_msg

from steerbridge.bridge.control.osc.server import OscServer
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.presets.model import Preset, PresetError, load_preset
from steerbridge.engine.runtime.errors import VectorFileError
from steerbridge.engine.runtime.vectors import load_vector

PRESETS = Path(__file__).resolve().parent.parent / "presets"
DEMO_TEXT = (PRESETS / "tiny.toml").read_text()
FIX = re.compile(r"expected|allowed keys|missing required key|fix|use |remove|give each|needs the key|make it|"
                 r"write \[\[knob\]\]|is only used with")
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("presets")
    shutil.copytree(PRESETS / "vectors", path / "vectors")
    return path


def check_load(folder: Path, text: str) -> Preset | None:
    """Load ``text`` as a preset; None after a PresetError that passed the message checks."""
    path = folder / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    try:
        return load_preset(path)
    except PresetError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.startswith(str(path.resolve())), problem  # names the file (and line when known)
            assert FIX.search(problem), f"no fix in: {problem}"
        return None


# --- presets ---------------------------------------------------------------------
@FUZZ
@given(st.text(max_size=400))
def test_random_text(folder: Path, text: str) -> None:
    check_load(folder, text)


scalars = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
                    st.text(max_size=12), st.booleans(), st.lists(st.integers(-3, 40), max_size=4),
                    st.lists(st.text(max_size=6), max_size=3))
KEYS = ["source", "device", "backend", "steps", "cfg_scale", "sampler", "cfg_mode", "start_step", "alpha_units",
        "prompt", "seed", "seconds", "negative_prompt", "name", "vector", "layers", "alpha_min", "alpha_max",
        "curve", "default", "stops", "midi", "osc", "orthogonalize_against", "one_to_all", "channel", "cc", "mode",
        "nrpn", "sorce"]
tables = st.dictionaries(st.sampled_from(KEYS), scalars | st.dictionaries(st.sampled_from(KEYS), scalars,
                                                                         max_size=4), max_size=8)


def _demo_like(model: dict, scene: dict, knobs: list[dict], extra: dict) -> dict:
    doc = {"model": {"source": "tiny", **model}, "scene": {"prompt": "x", **scene},
           "knob": [{"name": f"k{i}", "vector": "vectors/tiny/mood.safetensors", **k} for i, k in enumerate(knobs)]}
    doc.update(extra)
    return doc


@FUZZ
@given(tables, tables, st.lists(tables, max_size=3), st.dictionaries(st.sampled_from(["model", "knob", "x"]),
                                                                     scalars, max_size=1))
def test_random_documents_over_the_real_keys(folder: Path, model, scene, knobs, extra) -> None:
    try:
        text = tomli_w.dumps(_demo_like(model, scene, knobs, extra))
    except (TypeError, ValueError):
        assume(False)  # NaN keys etc. that TOML cannot write
    preset = check_load(folder, text)
    if preset is not None:  # what loads is usable: every knob maps to finite alphas
        state = ControlState(preset)
        assert all(math.isfinite(k.alpha) for k in state.snapshot().knobs.values())


@FUZZ
@given(st.data())
def test_line_edits_of_the_demo_preset(folder: Path, data) -> None:
    lines = DEMO_TEXT.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["delete", "duplicate", "value", "junk"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = key + "= " + data.draw(st.sampled_from(
                ["nan", "inf", "-1", "1e400", "99999999999999999999", '"x"', "[]", "{}", "true", '"/etc/passwd"',
                 '"../../../x.safetensors"']))
        elif lines:
            lines[i] = data.draw(st.text(max_size=20))
        if not lines:
            break
    check_load(folder, "\n".join(lines) + "\n")


def test_huge_integer_in_a_number_field_is_a_preset_error(folder: Path) -> None:
    assert check_load(folder, DEMO_TEXT.replace("cfg_scale = 6.0", "cfg_scale = 1" + "0" * 400)) is None


@FUZZ
@given(st.text(max_size=200))
def test_failed_preset_over_osc_leaves_the_state_unchanged(folder: Path, text: str) -> None:
    shutil.copy(PRESETS / "tiny.toml", folder / "tiny.toml")
    (folder / "bad.toml").write_text("[model]\nsource = 'tiny'\n" + text, encoding="utf-8")
    try:
        load_preset(folder / "bad.toml")
        assume(False)  # the text happened to be valid
    except PresetError:
        pass
    state = ControlState(load_preset(folder / "tiny.toml"))
    server = OscServer(state, port=0, presets_dir=folder)
    try:
        feed = server.dispatcher.call_handlers_for_packet
        feed(build_msg("/steer/knob/mood", [0.75]).dgram, ("127.0.0.1", 5))
        before = state.snapshot()
        feed(build_msg("/steer/preset", ["bad.toml"]).dgram, ("127.0.0.1", 5))
        assert server.presets.wait_idle(30)  # read and refused on steerbridge-preset-load
        assert state.snapshot() is before  # same object: not even the version moved
        assert before.knobs["mood"].value == 0.75
        errors = [args for address, args, _ in server.feedback._pending.values() if address == "/steer/error"]  # noqa: SLF001
        assert errors and errors[-1][0] == "bad_preset" and "bad.toml" in errors[-1][1]
    finally:
        server.stop()


# --- vector files ------------------------------------------------------------------
VECTOR = (PRESETS / "vectors" / "tiny" / "mood.safetensors").read_bytes()
HEADER_LEN = struct.unpack("<Q", VECTOR[:8])[0]


def check_vector(tmp: Path, data: bytes, model) -> None:
    path = tmp / "fuzz.safetensors"
    path.write_bytes(data)
    try:
        vector = load_vector(path, model=model)
    except VectorFileError as exc:
        assert str(path) in str(exc), str(exc)
        return
    assert all(bool(t.isfinite().all()) for t in vector.tensors.values())


def _header_json() -> dict:
    return json.loads(VECTOR[8:8 + HEADER_LEN])


def _with_header(header: dict) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + VECTOR[8 + HEADER_LEN:]


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VECTOR) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(VECTOR)))
def test_byte_mutated_vector_files(tmp_path: Path, tiny_model, flips, cut: int) -> None:
    data = bytearray(VECTOR)
    for pos, value in flips:
        data[pos] = value
    check_vector(tmp_path, bytes(data[:cut] if cut > 8 else data), tiny_model)


meta_values = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.floats())


@FUZZ
@given(st.sampled_from(["format_version", "site", "concept", "fingerprint", "site_norms", "positive", "layers",
                        "method", "normalized", "extra", "bogus"]), meta_values, st.booleans())
def test_mutated_metadata_json(tmp_path: Path, tiny_model, key: str, value, whole: bool) -> None:
    header = _header_json()
    meta = json.loads(header["__metadata__"]["steerbridge"])
    meta[key] = value
    header["__metadata__"]["steerbridge"] = json.dumps(value if whole else meta)
    check_vector(tmp_path, _with_header(header), tiny_model)


@FUZZ
@given(st.sampled_from(["dtype", "shape", "data_offsets", "name"]),
       st.one_of(st.sampled_from(["F16", "I64", "BOOL", "XX", "F64"]), st.lists(st.integers(-2, 70), max_size=3)))
def test_mutated_tensor_entries(tmp_path: Path, tiny_model, field: str, value) -> None:
    header = _header_json()
    name = next(k for k in header if k != "__metadata__")
    if field == "name":
        header[f"{name}x" if isinstance(value, str) else "layer.99"] = header.pop(name)
    else:
        header[name][field] = value
    check_vector(tmp_path, _with_header(header), tiny_model)
