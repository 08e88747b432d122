"""Distillation: the student's targets replay the teacher's guided sampler exactly; a short run exports and resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from steerbridge.engine.adapters.sat import sat
from steerbridge.engine.demo.distill import DistillConfig, distill, export_checkpoint, rf_schedule, teacher_targets
from steerbridge.engine.demo.model import load_model_folder
from steerbridge.engine.adapters.sat_source import DEMO_DIR

FRAMES = 8  # a few latent frames: the schedule, not the music, is under test


def test_the_four_step_schedule_is_every_other_point_of_the_eight_step_one() -> None:
    assert torch.allclose(rf_schedule(8)[::2], rf_schedule(4))
    assert rf_schedule(4)[0] == 1.0 and rf_schedule(4)[-1] == 0.0
    assert torch.all(rf_schedule(8)[1:] < rf_schedule(8)[:-1])


def test_student_targets_land_where_the_guided_teacher_lands() -> None:
    """Four student Euler steps along the targets end at upstream sample_rf's 8-step CFG render."""
    teacher = load_model_folder(DEMO_DIR)
    noise = torch.randn(2, teacher.io_channels, FRAMES, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        inputs = teacher.get_conditioning_inputs(teacher.conditioner(
            [{"prompt": "slow sad piano loop"}, {"prompt": "fast bright synth loop with drums"}], "cpu"))
        reference = sat("sampling").sample_rf(teacher.model, noise.clone(), steps=8, cfg_scale=5.0, batch_cfg=True,
                                              rescale_cfg=True, device="cpu", disable_tqdm=True, **inputs)
    x, t, v = teacher_targets(teacher.model, inputs, noise, teacher_steps=8, student_steps=4, cfg_scale=5.0)
    assert x.shape == (8, teacher.io_channels, FRAMES) and t.shape == (8,)
    assert torch.equal(x[:2], noise)  # the first student input is the noise itself
    ts = rf_schedule(4)
    replay = noise
    for k in range(4):
        assert torch.allclose(x[2 * k: 2 * k + 2], replay, atol=1e-5)
        assert torch.all(t[2 * k: 2 * k + 2] == ts[k])
        replay = replay + (ts[k + 1] - ts[k]) * v[2 * k: 2 * k + 2]
    assert torch.allclose(replay, reference, atol=1e-4)
    with pytest.raises(ValueError, match="multiple"):
        teacher_targets(teacher.model, inputs, noise, teacher_steps=8, student_steps=3, cfg_scale=5.0)


@pytest.mark.slow
def test_a_short_distillation_exports_a_cfg_free_four_step_model_and_resumes(tmp_path: Path) -> None:
    cfg = DistillConfig(teacher=str(DEMO_DIR), steps=2, batch=2, frames=FRAMES, warmup=1)
    opts = dict(cfg=cfg, minutes=None, threads=1, checkpoint_minutes=60.0, eval_minutes=60.0, eval_pairs=0)
    distill(tmp_path, resume=False, **opts)
    with pytest.raises(SystemExit, match="--resume"):
        distill(tmp_path, resume=False, **opts)
    config = json.loads((tmp_path / "export" / "model_config.json").read_text())
    assert config["steerbridge"]["steps"] == 4 and config["steerbridge"]["cfg_scale"] == 1.0
    student, teacher = load_model_folder(tmp_path / "export"), load_model_folder(DEMO_DIR)
    changed = [k for k, w in student.state_dict().items() if not torch.equal(w, teacher.state_dict()[k])]
    assert changed and all(k.startswith("model.") for k in changed)  # only the DiT learns; text and codec stay
    moved = tmp_path / "teacher_moved"  # a teacher folder may move between runs: resume takes the one given
    shutil.copytree(DEMO_DIR, moved)
    weights = load_file(str(moved / "model.safetensors"))  # and be trained again, its codec refitted
    weights["pretransform.band_mean"] = weights["pretransform.band_mean"] + 0.25
    save_file(weights, str(moved / "model.safetensors"))
    distill(tmp_path, resume=True, **{**opts, "cfg": DistillConfig(**{**cfg.__dict__, "steps": 3,
                                                                       "teacher": str(moved)})})
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["config"]["teacher"] == str(moved)
    export_checkpoint(tmp_path, griffin_lim_iters=16)
    config = json.loads((tmp_path / "export" / "model_config.json").read_text())
    assert config["model"]["pretransform"]["config"]["griffin_lim_iters"] == 16
    assert config["steerbridge"]["cfg_scale"] == 1.0
    exported = load_model_folder(tmp_path / "export").pretransform.band_mean
    assert torch.equal(exported, weights["pretransform.band_mean"].to(exported.dtype))  # the new teacher's codec


def test_logged_gaps_are_the_teacher_corpus_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    import math

    from steerbridge.engine.demo import distill as distill_module, fluid

    seen = {}

    def gaps(clips, seed, options):
        seen["options"] = options
        return {"mode": 0.3}

    monkeypatch.setattr(distill_module, "synthetic_class_gaps", gaps)
    monkeypatch.setattr(fluid, "find_fluidsynth", lambda: ("fluidsynth", "sf2"))
    cfg = DistillConfig(mood_tempo_coupling=0.4)
    assert distill_module.corpus_gaps(cfg, sample_rate=22050, log=print) == {"mode": 0.3}
    options = seen["options"]  # the FluidSynth corpus the teacher trained on, not the oscillator default
    assert (options.synth, options.mood_tempo_coupling, options.sample_rate) == ("fluidsynth", 0.4, 22050)

    def missing():
        raise fluid.FluidSynthMissing("no fluidsynth")

    monkeypatch.setattr(fluid, "find_fluidsynth", missing)
    logged = []
    out = distill_module.corpus_gaps(cfg, sample_rate=22050, log=logged.append)
    assert out.keys() == {"brightness", "tempo", "mode", "density"} and all(math.isnan(v) for v in out.values())
    assert "no fluidsynth" in logged[0]
