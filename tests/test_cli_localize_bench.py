"""`steerbridge localize` and `steerbridge bench --quick` on the tiny model, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import torch

from steerbridge.bridge.cli import main
from steerbridge.engine.runtime.vectors import load_vector

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_writes_report_pictures_vectors_and_json(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        code = main(["bench", "--model", "tiny", "--out", str(tmp_path), "--quick", "--json"])
    finally:
        torch.set_num_threads(threads)  # --quick sets 1 thread; give the session its setting back
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    report = (tmp_path / "report.md").read_text()
    assert "## Localisation" in report and "## Steering" in report and "| brightness | sae | ablated |" in report
    for png in ("patching_heatmap.png", "probe_heatmap.png", "curves_brightness.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    combos = {(r["method"], r["variant"]) for r in summary["rows"]}
    assert combos == {(m, v) for m in ("caa", "austeer", "sae") for v in ("localized", "all", "ablated")} | {
        ("prompt", "prompt")}
    loc = summary["localization"]["brightness"]
    assert len(loc["patching"]["impact"]) == 4 and len(loc["probes"]["accuracy"]) == 4 and loc["functional"]
    caa_local = load_vector(tmp_path / "vectors" / "brightness_caa_localized.safetensors")
    assert list(caa_local.layers) == loc["functional"] and caa_local.method == "caa"
    assert load_vector(tmp_path / "vectors" / "brightness_sae_all.safetensors").method == "sae"
    assert len(list((tmp_path / "saes").glob("*.safetensors"))) == 4
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == summary["rows"]
    assert summary["total_s"] > 0  # its speed (--quick < 2 min) is measured, not asserted: timings are noisy


def test_localize_probes_writes_a_preset_snippet(tmp_path, capsys):
    out = tmp_path / "mood.toml"
    code = main(["localize", "--model", "tiny", "--concept", "mood", "--method", "probes", "--seconds", "0.5",
                 "--steps", "3", "--top", "2", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    knob = tomllib.loads(out.read_text())["knob"][0]
    assert knob["name"] == "mood" and knob["layers"] == result["layers"] and len(knob["layers"]) == 2
    assert Path(result["picture"]).exists()


def test_localize_rejects_unknown_concept_and_bad_out(tmp_path, capsys):
    assert main(["localize", "--model", "tiny", "--concept", "nope"]) == 2
    assert "shipped concepts are" in capsys.readouterr().err
    assert main(["localize", "--concept", "mood", "--out", str(tmp_path / "x.txt")]) == 2


def test_help_of_both_commands_does_not_import_torch():
    for cmd in ("localize", "bench"):
        code = (f"import sys\nfrom steerbridge.bridge.cli import main\ntry:\n    main(['{cmd}', '--help'])\n"
                "except SystemExit:\n    pass\nprint('torch' in sys.modules)")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert "examples:" in res.stdout and res.stdout.strip().endswith("False"), res.stderr


def test_bench_takes_steps_and_cfg_from_the_model_unless_told() -> None:
    """The distilled demo model says 4 steps without CFG: bench measures it as it is played."""
    import argparse

    from steerbridge import engine
    from steerbridge.bridge.cli.bench import _config, _model_defaults

    model = engine.load_model("demo")
    own = model.adapter.options
    args = argparse.Namespace(quick=False, concept=[], method=[], alphas=None, no_multi=False, seconds=None,
                              steps=None, cfg_scale=None, seed=None)
    cfg = _model_defaults(_config(args), model, args)
    assert (cfg.steps, cfg.cfg_scale) == (own["steps"], own["cfg_scale"]) == (4, 1.0)
    told = argparse.Namespace(**{**vars(args), "steps": 6, "cfg_scale": 3.0})
    cfg = _model_defaults(_config(told), model, told)
    assert (cfg.steps, cfg.cfg_scale) == (6, 3.0)
