"""Presets: loading, validation messages (file, line, key, expectation), curves, atomic saves."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from steerbridge.bridge.presets.model import Knob, MidiBinding, PresetError, load_preset, save_preset, set_midi_binding

PRESETS = Path(__file__).resolve().parent.parent / "presets"

GOOD = """\
# a comment that must survive MIDI learn
[model]
source = "tiny"
steps = 4
cfg_mode = "both"

[scene]
prompt = "lofi beat"
seed = 7
seconds = 1.5

[[knob]]
name = "mood"
vector = "v/mood.safetensors"   # relative to the preset
alpha_min = -2
alpha_max = 6
curve = "exp"
stops = 3
midi = { channel = 2, cc = 74 }

[[knob]]
name = "tempo"
vector = "v/tempo.safetensors"
layers = [1, 2]
orthogonalize_against = ["mood"]
"""


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PresetError) as info:
        load_preset(write(tmp_path, text), check_files=False)
    assert isinstance(info.value, ValueError)
    return info.value.problems


def test_load_good_preset(tmp_path: Path) -> None:
    p = load_preset(write(tmp_path, GOOD), check_files=False)
    assert p.model.steps == 4 and p.model.cfg_mode == "both" and p.model.cfg_scale == 6.0
    assert (p.scene.prompt, p.scene.seed, p.scene.seconds) == ("lofi beat", 7, 1.5)
    mood, tempo = p.knobs
    assert mood.alpha_min == -2.0 and isinstance(mood.alpha_min, float)
    assert mood.midi == MidiBinding(channel=2, cc=74, mode="7bit")
    assert tempo.layers == (1, 2) and tempo.orthogonalize_against == ("mood",)
    assert tempo.osc_address() == "/steer/knob/tempo"
    assert p.vector_path("mood") == (tmp_path / "v" / "mood.safetensors").resolve()
    assert p.model_source() == "tiny"


def test_shipped_presets_load() -> None:
    demo = load_preset(PRESETS / "tiny.toml")  # vectors must exist
    assert demo.model.source == "tiny" and len(demo.knobs) >= 2
    assert all(demo.vector_path(k).is_file() for k in demo.knobs)
    sao = load_preset(PRESETS / "stable-audio-open.example.toml", check_files=False)
    assert sao.model.alpha_units == "norm"
    assert Path(sao.model_source()).is_absolute()


def test_unknown_keys_are_errors_with_their_line(tmp_path: Path) -> None:
    text = GOOD.replace('curve = "exp"', 'curve = "exp"\ncolour = "red"').replace("steps = 4", "stepz = 4")
    found = problems(tmp_path, text)
    assert any(p.startswith(f"{tmp_path / 'p.toml'}:4: model.stepz: unknown key; did you mean 'steps'?")
               for p in found), found
    assert any(":18: knob[0].colour: unknown key" in p for p in found), found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (GOOD.replace("seed = 7", 'seed = "seven"').replace("stops = 3", "stops = 1")
            .replace("cc = 74", "cc = 200"))
    found = problems(tmp_path, text)
    assert len(found) == 3, found
    assert any(":9: scene.seed: expected an integer 0..2**32-1, got 'seven'" in p for p in found)
    assert any(":18: knob[0].stops: expected an integer 2..64, got 1" in p for p in found)
    assert any(":19: knob[0].midi.cc: expected a CC number 0..127, got 200" in p for p in found)


@pytest.mark.parametrize("edit, expected", [
    (("curve = \"exp\"", "curve = \"cubic\""), "knob[0].curve: expected one of 'linear', 'exp', 'log'"),
    (("name = \"tempo\"", "name = \"mood\""), "knob name 'mood' is used twice"),
    (("[\"mood\"]", "[\"nope\"]"),
     "orthogonalize_against: expected names of other knobs (mood) or vector files (*.safetensors), got 'nope'"),
    (("alpha_max = 6", "alpha_max = -2"), "expected alpha_max different from alpha_min"),
    (("cc = 74 }", "cc = 4, mode = \"nrpn\" }"), "mode 'nrpn' needs the key nrpn"),
    (("cc = 74 }", "cc = 40, mode = \"14bit\" }"), "expected a CC number 0..31 (14-bit"),
    (("layers = [1, 2]", "layers = [1, 1]"), "expected a non-empty list of distinct layer indices"),
    (("name = \"tempo\"", "name = \"te mpo\""), "becomes an OSC address"),
    (("[scene]\nprompt = \"lofi beat\"", "[scene]"), "missing required key 'prompt'"),
    (("seconds = 1.5", "seconds = nan"), "scene.seconds: expected a length in seconds"),
    (("seconds = 1.5", "seconds = 1.5\nbpm = 4000"), "scene.bpm: expected a tempo in BPM, 20..400"),
])
def test_bad_values_name_key_and_expectation(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    assert edit[0] in GOOD
    found = problems(tmp_path, GOOD.replace(*edit))
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path / "p.toml")) for p in found)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("seed = 7", "seed = = 7"))
    assert len(found) == 1 and "not valid TOML" in found[0] and "line 9" in found[0]


def test_missing_vector_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r":14: knob\[0\].vector: vector file .* does not exist"):
        load_preset(write(tmp_path, GOOD))


def test_curves_exact_values() -> None:
    lin = Knob(name="a", vector="x", alpha_min=-4, alpha_max=4)
    assert lin.alpha_for(0.5) == 0.0 and lin.alpha_for(0.0) == -4.0 and lin.alpha_for(1.0) == 4.0
    assert lin.alpha_for(7.0) == 4.0 and lin.alpha_for(-1.0) == -4.0  # clamped
    exp = replace(lin, curve="exp", alpha_min=0.0, alpha_max=15.0)
    assert exp.alpha_for(0.5) == pytest.approx(3.0)  # (2**2 - 1) / (2**4 - 1) * 15
    log = replace(exp, curve="log")
    assert log.alpha_for(3 / 15 * 0 + 0.2) == pytest.approx(15 * math.log2(1 + 0.2 * 15) / 4)
    assert lin.stop_alphas() == (-4.0, -2.0, 0.0, 2.0, 4.0)
    assert lin.bracket(0.3) == (1, 2, pytest.approx(0.2)) and lin.bracket(1.0) == (3, 4, 1.0)


@pytest.mark.parametrize("curve", ["linear", "exp", "log"])
@pytest.mark.parametrize("lo, hi", [(-4.0, 4.0), (0.0, 6.0), (3.0, -1.5), (-0.01, 0.02)])
def test_alpha_for_inverse_roundtrip(curve: str, lo: float, hi: float) -> None:
    knob = Knob(name="k", vector="x", alpha_min=lo, alpha_max=hi, curve=curve)
    for i in range(101):
        v = i / 100
        assert knob.value_for(knob.alpha_for(v)) == pytest.approx(v, abs=1e-9)
    assert knob.alpha_for(0.0) == lo and knob.alpha_for(1.0) == pytest.approx(hi)


def test_save_roundtrip_and_rebase(tmp_path: Path) -> None:
    original = load_preset(write(tmp_path, GOOD), check_files=False)
    (tmp_path / "other").mkdir()
    moved = save_preset(original, tmp_path / "other" / "copy.toml")
    assert moved.knobs == original.knobs[:0] + tuple(replace(k, vector=f"../{k.vector}") for k in original.knobs)
    assert moved.vector_path("mood") == original.vector_path("mood")
    again = load_preset(tmp_path / "other" / "copy.toml", check_files=False)
    assert again == moved
    assert not list(tmp_path.glob("other/.*.tmp"))  # no temp file left behind
    assert again.scene.bpm is None
    with_tempo = save_preset(replace(original, scene=replace(original.scene, bpm=92.5)), tmp_path / "tempo.toml")
    assert load_preset(tmp_path / "tempo.toml", check_files=False).scene.bpm == with_tempo.scene.bpm == 92.5


def test_save_refuses_invalid_and_keeps_old_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    p = load_preset(path, check_files=False)
    broken = p.with_knob(replace(p.knob("mood"), stops=1))
    with pytest.raises(PresetError, match="stops"):
        save_preset(broken)
    assert path.read_text() == GOOD


def test_set_midi_binding_keeps_comments(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    p = load_preset(path, check_files=False)
    new = set_midi_binding(p, "mood", MidiBinding(channel=3, cc=5, mode="14bit"))
    text = path.read_text()
    assert "# a comment that must survive MIDI learn" in text and "# relative to the preset" in text
    assert 'midi = { channel = 3, cc = 5, mode = "14bit" }' in text
    new2 = set_midi_binding(new, "tempo", MidiBinding(channel=1, mode="nrpn", nrpn=1000))
    assert load_preset(path, check_files=False) == new2
    assert new2.knob("tempo").midi == MidiBinding(channel=1, mode="nrpn", nrpn=1000)
    cleared = set_midi_binding(new2, "mood", None)
    assert cleared.knob("mood").midi is None
    assert load_preset(path, check_files=False) == cleared
    assert "midi = { channel = 3" not in path.read_text()


TEMPO = GOOD + """
[[knob]]
name = "bpm"
target = "bpm"
alpha_min = 70
alpha_max = 160
midi = { channel = 2, cc = 75 }
"""


def test_a_tempo_knob_loads_saves_and_sets_the_render_tempo(tmp_path: Path) -> None:
    from steerbridge.bridge.engine_link.jobs import render_job_for

    preset = load_preset(write(tmp_path, TEMPO), check_files=False)
    knob = preset.knob("bpm")
    assert knob.is_tempo and knob.vector == "" and knob.default_alpha == 115.0
    again = save_preset(preset, tmp_path / "saved.toml")
    text = (tmp_path / "saved.toml").read_text()
    assert again.knob("bpm") == knob and text.count("target") == text.count('target = "bpm"') == 1
    job = render_job_for(preset, {"bpm": 150.0, "mood": 1.0})
    assert job.bpm == 150.0 and [t.path for t in job.terms] == [str(preset.vector_path("mood"))]
    assert render_job_for(preset, {}).bpm == 115.0  # the knob's default position
    assert render_job_for(load_preset(write(tmp_path, GOOD), check_files=False), {}, bpm=99.0).bpm == 99.0


@pytest.mark.parametrize("edit, expected", [
    (("target = \"bpm\"", "target = \"bpm\"\nvector = \"v/x.safetensors\""),
     "missing required key 'vector_alpha_min' for a tempo knob with a vector: the vector's alpha at alpha_min BPM"),
    (("target = \"bpm\"", "target = \"bpm\"\nvector_alpha_max = 1.0"), "without a vector sets only the tempo"),
    (("name = \"mood\"", "name = \"mood\"\nvector_alpha_min = 1.0"), "make it a tempo knob"),
    (("alpha_min = 70\n", ""), "missing required key 'alpha_min' for a tempo knob"),
    (("alpha_max = 160", "alpha_max = 900"), "expected a tempo in BPM, 20..400"),
    (("orthogonalize_against = [\"mood\"]", "orthogonalize_against = [\"bpm\"]"), "sets the tempo and has no vector"),
    (("target = \"bpm\"", "target = \"tempo\""), "expected one of 'vector', 'bpm'"),
    (("name = \"bpm\"", "name = \"bpm\"\nlayers = [1]"), "layers means nothing"),
])
def test_tempo_knob_mistakes_are_named(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    assert edit[0] in TEMPO
    found = problems(tmp_path, TEMPO.replace(*edit))
    assert any(expected in p for p in found), found


def test_a_tempo_knob_with_a_vector_steers_it_with_the_bpm(tmp_path: Path) -> None:
    """The vector's alpha follows the BPM from one end of the range to the other; at the BPM where it is 0
    the job has no term (the unsteered cache entry), and the knob can be orthogonalised against."""
    from steerbridge.bridge.engine_link.jobs import render_job_for

    text = TEMPO.replace('target = "bpm"', 'target = "bpm"\nvector = "v/beat.safetensors"\nlayers = [2, 3]\n'
                         'vector_alpha_min = -1.0\nvector_alpha_max = 2.0')
    text = text.replace('orthogonalize_against = ["mood"]', 'orthogonalize_against = ["bpm"]')
    preset = load_preset(write(tmp_path, text), check_files=False)
    knob = preset.knob("bpm")
    assert knob.is_tempo and knob.vector_alpha(70.0) == -1.0 and knob.vector_alpha(160.0) == 2.0
    assert knob.vector_alpha(100.0) == 0.0 and knob.vector_alpha(400.0) == 2.0  # clamped to the range's ends
    fast = render_job_for(preset, {"bpm": 145.0})
    term = next(t for t in fast.terms if t.path == str(preset.vector_path("bpm")))
    assert fast.bpm == 145.0 and term.alpha == pytest.approx(1.5) and term.layers == (2, 3)
    assert render_job_for(preset, {"bpm": 100.0}).terms == ()
    tempo = render_job_for(preset, {"tempo": 1.0, "bpm": 100.0}).terms
    assert [t.orthogonalize_against for t in tempo] == [(str(preset.vector_path("bpm")),)]
    again = save_preset(preset, tmp_path / "saved.toml")
    assert again.knob("bpm") == knob and "vector_alpha_max = 2.0" in (tmp_path / "saved.toml").read_text()


def test_one_tempo_knob_per_preset(tmp_path: Path) -> None:
    found = problems(tmp_path, TEMPO + TEMPO[len(GOOD):].replace('"bpm"\ntarget', '"bpm2"\ntarget')
                     .replace("cc = 75", "cc = 76"))
    assert any("at most one tempo knob" in p for p in found), found


def test_orthogonalise_against_a_vector_file_beside_a_tempo_knob(tmp_path: Path) -> None:
    """A tempo knob has no vector, so mood names the tempo vector file; saving elsewhere re-bases it."""
    from steerbridge.bridge.engine_link.jobs import render_job_for

    text = TEMPO.replace('orthogonalize_against = ["mood"]', 'orthogonalize_against = ["mood", "v/tv.safetensors"]')
    preset = load_preset(write(tmp_path, text), check_files=False)
    assert preset.ortho_path("v/tv.safetensors") == (tmp_path / "v" / "tv.safetensors").resolve()
    term = render_job_for(preset, {"tempo": 1.0}).terms[0]
    assert term.orthogonalize_against == (str(preset.vector_path("mood")), str(tmp_path / "v" / "tv.safetensors"))
    (tmp_path / "sub").mkdir()
    moved = save_preset(preset, tmp_path / "sub" / "moved.toml")
    assert moved.knob("tempo").orthogonalize_against == ("mood", "../v/tv.safetensors")
    assert moved.ortho_path("../v/tv.safetensors") == preset.ortho_path("v/tv.safetensors")
    (tmp_path / "v").mkdir()
    for name in ("mood", "tempo"):
        (tmp_path / "v" / f"{name}.safetensors").write_bytes(b"")
    with pytest.raises(PresetError, match=r"knob\[1\].orthogonalize_against: vector file .*tv.safetensors does not"):
        load_preset(write(tmp_path, text))
    found = problems(tmp_path, text.replace('"v/tv.safetensors"]', '"v/tv.pt"]'))
    assert any("or vector files (*.safetensors), got 'v/tv.pt'" in p for p in found), found
