"""ONNX Runtime backend: export, parity with torch (steered, unsteered, cond-only CFG), stale exports."""

from __future__ import annotations

import argparse
import json
import shutil
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from steerbridge.engine import RenderRequest, Steering, SteeringTerm  # noqa: E402
from steerbridge.engine.onnx.export import export_denoiser  # noqa: E402
from steerbridge.engine.onnx.parity import TeacherForced  # noqa: E402
from steerbridge.engine.onnx.runtime import OnnxDenoiser  # noqa: E402
from steerbridge.engine.onnx.spec import PARITY_TOL, SPEC_FILE, OnnxExportError, read_spec  # noqa: E402
from steerbridge.engine.runtime.errors import EngineError  # noqa: E402
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta  # noqa: E402

AUDIO_TOL = 1e-4  # final audio, max abs (measured ~2e-6 on tiny: ORT and torch differ in float rounding)
REQ = RenderRequest("warm piano loop", seed=4, seconds=2.0, steps=4, cfg_scale=6.0)


@pytest.fixture(scope="module")
def export_dir(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about upstream's Python-side shape checks
        result = export_denoiser(tiny_model, out)
    assert max(result.spec.parity.values()) <= PARITY_TOL
    return out


@pytest.fixture()
def model(tiny_model, export_dir):
    yield tiny_model
    tiny_model.use_backend("torch")
    tiny_model.detach_steering()


def _steering(model, *, alpha: float = 1.5, per_step: bool = False) -> Steering:
    """A cross-attention vector on two layers and a block vector (per-step rows if asked)."""
    g = torch.Generator().manual_seed(5)
    d = model.site_dim("cross_attn")
    xa = ConceptVector({1: torch.randn(d, generator=g), 2: torch.randn(d, generator=g)},
                       VectorMeta(concept="xa", site="cross_attn", method="test", fingerprint=model.fingerprint))
    rows = (REQ.steps, d) if per_step else (d,)
    blk = ConceptVector({3: torch.randn(*rows, generator=g) * 0.5},
                        VectorMeta(concept="blk", site="block", method="test", fingerprint=model.fingerprint))
    return Steering((SteeringTerm(xa, alpha), SteeringTerm(blk, -alpha)), cfg_mode="cond_only")


def _teacher_forced(model, export_dir, steering: Steering | None, req: RenderRequest = REQ) -> TeacherForced:
    if steering is not None:
        model.handle.attach()
        model.handle.set(steering)
    forced = TeacherForced(OnnxDenoiser(model.adapter, model.handle, export_dir, fingerprint=model.fingerprint))
    cond = model.adapter.encode(req.prompt, seconds=req.seconds)
    model.adapter.sample(cond, seed=req.seed, seconds=req.seconds, steps=req.steps, cfg_scale=req.cfg_scale,
                         denoiser=forced)
    return forced


@pytest.mark.parametrize("steered", [False, True], ids=["unsteered", "steered"])
def test_denoiser_output_per_step_matches_torch(model, export_dir, steered):
    forced = _teacher_forced(model, export_dir, _steering(model, per_step=True) if steered else None)
    assert forced.calls == REQ.steps  # dpmpp-3m-sde: one model call per step
    assert forced.max_diff <= PARITY_TOL


def test_cfg_off_single_row_matches_torch(model, export_dir):
    forced = _teacher_forced(model, export_dir, _steering(model), req=RenderRequest("pad", seconds=1.0, steps=3,
                                                                                   cfg_scale=1.0))
    assert model.adapter.gate.last_rows == 1 and not model.adapter.gate.last_cfg_active
    assert forced.max_diff <= PARITY_TOL


def test_offsets_follow_cond_only_gates_exactly(model, export_dir):
    steering = _steering(model)
    model.handle.attach()
    model.handle.set(steering)
    onnx = OnnxDenoiser(model.adapter, model.handle, export_dir, fingerprint=model.fingerprint)
    gate = model.adapter.gate
    gate.begin_render()
    gate.before_forward(rows=2, cfg_active=True)  # [cond, uncond]
    feed = onnx.offsets(rows=2)
    v = steering.terms[0].vector
    assert torch.equal(torch.from_numpy(feed["offset.cross_attn.1"][0]), 1.5 * v.tensor(1))
    assert not feed["offset.cross_attn.1"][1].any()  # unconditional row untouched
    assert not feed["offset.cross_attn.0"].any()  # unsteered layer
    gate.before_forward(rows=1, cfg_active=False)  # CFG off: the single pass is conditional
    assert torch.equal(torch.from_numpy(onnx.offsets(rows=1)["offset.cross_attn.2"][0]), 1.5 * v.tensor(2))


def test_rendered_audio_matches_torch_and_knob_moves_need_no_reexport(model, export_dir):
    outs = {}
    for alpha in (0.0, 2.0):
        steering = _steering(model, alpha=alpha)
        model.use_backend("torch")
        ref = model.render(REQ, steering=steering).audio
        model.use_backend("onnx", onnx_dir=export_dir)
        got = model.render(REQ, steering=steering).audio
        assert np.abs(got - ref).max() <= AUDIO_TOL
        outs[alpha] = got
    assert np.abs(outs[2.0] - outs[0.0]).max() > 100 * AUDIO_TOL  # steering really acts in the graph


def test_stale_export_is_refused(model, export_dir, tmp_path):
    stale = tmp_path / "stale"
    shutil.copytree(export_dir, stale)
    spec = json.loads((stale / SPEC_FILE).read_text())
    spec["fingerprint"] = "0" * 32
    (stale / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(OnnxExportError) as err:
        model.use_backend("onnx", onnx_dir=stale)
    msg = str(err.value)
    assert "0" * 32 in msg and model.fingerprint in msg and "steerbridge export-onnx" in msg
    assert model.backend == "torch"  # nothing half-switched
    with pytest.raises(OnnxExportError, match="no ONNX export"):
        model.use_backend("onnx", onnx_dir=tmp_path / "nowhere")
    assert read_spec(export_dir, fingerprint=model.fingerprint).fingerprint == model.fingerprint


def test_torch_side_module_swaps_are_refused(model, export_dir):
    model.use_backend("onnx", onnx_dir=export_dir)
    block = model.adapter.blocks[0]
    inner = block.cross_attn
    block.cross_attn = torch.nn.Sequential(inner)  # what activation patching would do
    try:
        with pytest.raises(EngineError, match="backend 'torch'"):
            model.render(REQ)
    finally:
        block.cross_attn = inner


def test_export_command_json(tmp_path, capsys):
    from steerbridge.bridge.cli import export_onnx

    parser = argparse.ArgumentParser()
    export_onnx.register(parser.add_subparsers())
    args = parser.parse_args(["export-onnx", "--model", "tiny", "--out", str(tmp_path), "--no-check", "--json"])
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["folder"] == str(tmp_path.resolve()) and info["parity"] == {}
    assert read_spec(tmp_path).fingerprint == info["fingerprint"]
