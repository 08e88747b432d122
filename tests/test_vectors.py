"""Vector files: round trip, refusal of other models/sites, arithmetic."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from steerbridge.engine.runtime.errors import VectorFileError, VectorMismatchError
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta, load_vector, save_vector


def vec(fp="abc", site="cross_attn", d=64, layers=(1, 2), concept="mood"):
    g = torch.Generator().manual_seed(len(concept))
    return ConceptVector({l: torch.randn(d, generator=g) for l in layers},
                         VectorMeta(concept=concept, site=site, method="caa", fingerprint=fp,
                                    positive=("happy",), negative=("sad",), site_norms={1: 2.5, 2: 3.0}))


def test_round_trip_is_exact(tmp_path, tiny_model):
    v = vec(fp=tiny_model.fingerprint)
    path = save_vector(v, tmp_path / "mood.safetensors")
    back = load_vector(path, model=tiny_model)
    assert back.layers == (1, 2) and back.concept == "mood" and back.meta.site_norms == {1: 2.5, 2: 3.0}
    assert all(torch.equal(back.tensor(l), v.tensor(l)) for l in v.layers)
    assert back.content_hash == v.content_hash
    assert back.meta.created  # stamped on save
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_refuses_other_model_naming_both_fingerprints(tmp_path, tiny_model):
    path = save_vector(vec(fp="deadbeef"), tmp_path / "v.safetensors")
    with pytest.raises(VectorMismatchError) as err:
        load_vector(path, model=tiny_model)
    assert "deadbeef" in str(err.value) and tiny_model.fingerprint in str(err.value)


def test_refuses_other_site_and_wrong_dims(tmp_path, tiny_model):
    path = save_vector(vec(fp=tiny_model.fingerprint, site="block"), tmp_path / "v.safetensors")
    with pytest.raises(VectorMismatchError, match="site 'block', expected 'cross_attn'"):
        load_vector(path, site="cross_attn")
    bad = save_vector(vec(fp=tiny_model.fingerprint, d=7), tmp_path / "d.safetensors")
    with pytest.raises(VectorMismatchError, match="d=7"):
        load_vector(bad, model=tiny_model)


def test_malformed_files_get_clear_errors(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(VectorFileError, match="not a readable safetensors"):
        load_vector(junk)
    nometa = tmp_path / "nometa.safetensors"
    save_file({"layer.0": torch.zeros(3)}, str(nometa))
    with pytest.raises(VectorFileError, match="no 'steerbridge' metadata"):
        load_vector(nometa)
    with pytest.raises(VectorFileError, match="pickle"):
        load_vector(tmp_path / "x.pt")
    nan = tmp_path / "nan.safetensors"
    v = vec()
    save_vector(v.with_tensors({1: torch.full((64,), float("nan"))}), nan)
    with pytest.raises(VectorFileError, match="NaN"):
        load_vector(nan)


def test_arithmetic_blends():
    a, b = vec(concept="happy"), vec(concept="calm", layers=(2, 3))
    blend = 2 * a - 0.5 * b
    assert blend.layers == (1, 2, 3)
    assert torch.allclose(blend.tensor(2), 2 * a.tensor(2) - 0.5 * b.tensor(2))
    assert torch.allclose(blend.tensor(3), -0.5 * b.tensor(3))
    with pytest.raises(VectorMismatchError):
        a + vec(fp="other")
