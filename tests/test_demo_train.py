"""Training: the schedule, and resuming reproduces an uninterrupted run bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from steerbridge.engine.demo.train import TrainConfig, _lr, onset_loss, train


def test_lr_warms_up_then_decays_by_cosine_to_the_floor() -> None:
    cfg = TrainConfig(lr=1e-3, warmup=10, steps=110, final_lr_fraction=0.05)
    assert _lr(cfg, 0) == pytest.approx(1e-4)
    assert _lr(cfg, 9) == pytest.approx(1e-3)
    assert _lr(cfg, 10) == pytest.approx(1e-3)
    assert _lr(cfg, 60) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))
    assert _lr(cfg, 110) == pytest.approx(5e-5)
    assert _lr(cfg, 500) == pytest.approx(5e-5)


def test_the_onset_loss_charges_a_late_note_more_than_a_wrong_level() -> None:
    x0 = torch.zeros(1, 4, 32)
    x0[..., 10:] = 1.0  # a note starting at frame 10
    late, level = torch.zeros_like(x0), x0 * 0.6
    late[..., 12:] = 1.0  # the same note two frames late; or on time, its level 0.4 off
    t = torch.tensor([0.5])
    xt = (1 - t) * x0 + t * torch.randn_like(x0)
    velocity = lambda clean: (xt - clean) / t  # noqa: E731  the prediction whose clean latent is `clean`
    assert onset_loss(velocity(x0), xt, t, x0) == pytest.approx(0.0, abs=1e-10)
    mse = lambda clean: torch.nn.functional.mse_loss(velocity(clean), velocity(x0))  # noqa: E731
    assert mse(level) > mse(late)  # the velocity loss minds the level more than the timing
    assert onset_loss(velocity(late), xt, t, x0) > 5 * onset_loss(velocity(level), xt, t, x0)


@pytest.mark.slow
def test_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = TrainConfig(clips=24, batch=4, steps=3, warmup=2, synth="procedural")  # no FluidSynth needed
    opts = dict(cfg=cfg, minutes=None, threads=1, checkpoint_minutes=60.0, eval_minutes=60.0,
                eval_pairs=0)
    train(tmp_path / "a", resume=False, **opts)
    train(tmp_path / "b", resume=False, until_step=1, **opts)
    with pytest.raises(SystemExit, match="--resume"):
        train(tmp_path / "b", resume=False, **opts)
    train(tmp_path / "b", resume=True, **opts)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 3
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert (tmp_path / "b" / "export" / "model.safetensors").exists()
