"""A diffusers folder without its text encoder and tokenizer loads them from the local Hugging Face cache, read
offline, and says exactly what is needed where when the cache has them neither.

The cache is built in a temporary folder, in the hub's layout (``models--org--name/snapshots/<rev>/``, files as
symlinks into ``blobs/``, ``refs/main``), from tiny:sao-diffusers's own saved components: the model stays real.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from steerbridge.engine.runtime.errors import ModelLoadError
from steerbridge.engine.runtime.source import load_source

FAMILY = "sao-diffusers"
LENT = ("text_encoder", "tokenizer")  # what the folder lacks and the cache lends


def _cache_repo(cache: Path, repo_id: str, pipeline: Path, rev: str = "0123abcd") -> Path:
    """Put ``pipeline``'s model_index.json and LENT sub-folders in ``cache`` as the hub would store ``repo_id``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / rev
    for rel in [Path("model_index.json")] + [p.relative_to(pipeline) for name in LENT
                                               for p in (pipeline / name).rglob("*") if p.is_file()]:
        data = (pipeline / rel).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        (snap / rel).symlink_to(blob)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snap


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(tiny model, a full saved copy of it)."""
    from steerbridge.engine.runtime.render import load_model

    model = load_model(f"tiny:{FAMILY}")
    full = tmp_path_factory.mktemp("full") / "pipe"
    model.adapter.pipe.save_pretrained(full, safe_serialization=True)
    return model, full


@pytest.fixture()
def partial(saved, tmp_path):
    """A copy of the model folder without its text encoder and tokenizer."""
    _, full = saved
    folder = tmp_path / "finetune"
    shutil.copytree(full, folder)
    for name in LENT:
        shutil.rmtree(folder / name)
    return folder


def test_missing_components_come_from_the_hub_cache(saved, partial, tmp_path, monkeypatch):
    model, full = saved
    cache = tmp_path / "hub"
    _cache_repo(cache, "stabilityai/stable-audio-open-1.0", full)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    loaded = load_source(partial)
    assert loaded.fingerprint == model.fingerprint  # the very weights and classes of the full folder
    encoder = loaded.model.text_encoder
    assert not any(p.data_ptr() == q.data_ptr() for p, q in zip(encoder.parameters(),
                                                                model.adapter.pipe.text_encoder.parameters()))
    ids = loaded.model.tokenizer("a bright loop", return_tensors="pt").input_ids
    assert ids.tolist() == model.adapter.pipe.tokenizer("a bright loop", return_tensors="pt").input_ids.tolist()


def test_hf_home_is_the_cache_root_too(saved, partial, tmp_path, monkeypatch):
    model, full = saved
    _cache_repo(tmp_path / "hf" / "hub", "org/base-model", full)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert load_source(partial).fingerprint == model.fingerprint


def test_neither_folder_nor_cache_names_the_files_and_places(partial, tmp_path, monkeypatch):
    cache = tmp_path / "empty-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(ModelLoadError) as err:
        load_source(partial)
    msg = str(err.value)
    assert f"{partial} has no 'text_encoder/' folder for its T5EncoderModel" in msg
    assert "steerbridge never downloads" in msg and "config.json and model.safetensors" in msg
    assert f"in {partial / 'text_encoder'}/" in msg and str(cache) in msg
    assert 'models--ORG--NAME/snapshots/REV/text_encoder/' in msg
    assert '"text_encoder": ["transformers", "T5EncoderModel"]' in msg


def test_a_cache_snapshot_of_another_class_or_two_candidates(saved, partial, tmp_path, monkeypatch):
    _, full = saved
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    other = _cache_repo(cache, "org/other", full)
    index = json.loads((other / "model_index.json").read_text())
    index["text_encoder"] = ["transformers", "ClapTextModelWithProjection"]  # not the class the folder needs
    (other / "model_index.json").unlink()
    (other / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="no 'text_encoder/' folder"):
        load_source(partial)
    _cache_repo(cache, "org/base-a", full)
    _cache_repo(cache, "org/base-b", full)
    with pytest.raises(ModelLoadError, match=r"several models: org/base-a, org/base-b\. steerbridge does not guess"):
        load_source(partial)
