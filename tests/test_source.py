"""Model folders load strictly; errors name the keys and the fix."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from steerbridge.engine.runtime.errors import ModelLoadError
from steerbridge.engine.runtime.source import TINY_CONFIG, fingerprint_of, load_source


@pytest.fixture()
def folder(tmp_path, tiny_model):
    cfg = json.loads(TINY_CONFIG.read_text())
    (tmp_path / "model_config.json").write_text(json.dumps(cfg))
    state = {k: v.contiguous() for k, v in tiny_model.model.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    return tmp_path, state


def test_folder_round_trip_keeps_fingerprint(folder, tiny_model):
    path, _ = folder
    loaded = load_source(path)
    assert loaded.fingerprint == tiny_model.fingerprint
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, tiny_model.model.state_dict()[k]), k


@pytest.mark.parametrize("change,expect", [
    ("drop", "missing keys (1): model.model.transformer.layers.2.cross_attn.to_q.weight"),
    ("extra", "unexpected keys (1): not.a.key"),
    ("shape", "mis-shaped keys (1): model.model.transformer.layers.2.cross_attn.to_q.weight: file (3, 3)"),
])
def test_strict_loading_names_the_keys(folder, change, expect):
    path, state = folder
    key = "model.model.transformer.layers.2.cross_attn.to_q.weight"
    if change == "drop":
        state.pop(key)
    elif change == "extra":
        state["not.a.key"] = torch.zeros(2)
    else:
        state[key] = torch.zeros(3, 3)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(ModelLoadError) as err:
        load_source(path)
    assert expect in str(err.value)
    assert "model_config.json" in str(err.value)


def test_missing_folder_and_files_say_what_a_folder_holds(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_source(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="model_config.json"):
        load_source(tmp_path)
    (tmp_path / "model_config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_source(tmp_path)


def test_hub_text_encoders_fail_with_the_files_needed(folder, monkeypatch, tmp_path_factory):
    path, _ = folder
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("empty_hf")))
    cfg = json.loads((path / "model_config.json").read_text())
    cfg["model"]["conditioning"]["configs"][0] = {"id": "prompt", "type": "t5",
                                                  "config": {"t5_model_name": "t5-base", "max_length": 64}}
    (path / "model_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="T5 encoder 't5-base'.*HF_HOME"):
        load_source(path)


def test_fingerprint_sees_content_and_config():
    a = {"w": torch.ones(10)}
    b = {"w": torch.ones(10) * 2}
    assert fingerprint_of({"x": 1}, a) != fingerprint_of({"x": 1}, b)
    assert fingerprint_of({"x": 1}, a) != fingerprint_of({"x": 2}, a)
    assert fingerprint_of({"x": 1}, a) == fingerprint_of({"x": 1}, {"w": torch.ones(10)})


def test_pickle_weights_are_never_read(tmp_path):
    (tmp_path / "model_config.json").write_text(TINY_CONFIG.read_text())
    torch.save({"a": torch.zeros(1)}, tmp_path / "model.ckpt")
    with pytest.raises(ModelLoadError, match="only .safetensors"):
        load_source(tmp_path)
