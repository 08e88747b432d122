"""Concept vectors and their file format.

A vector file is a ``*.safetensors`` file with tensors ``layer.<i>`` of shape
``[d]`` (one direction) or ``[steps, d]`` (one per diffusion step), and JSON
metadata under the key ``steerbridge``: format version, concept, site, method,
model fingerprint, layers, normalisation, prompts, creation time and the mean
activation norm of the site at each layer (used when alpha is given in units
of that norm). Loading a vector made for another model or site is refused.

Widths. On a transformer every layer of a site has one width ``d``; on a U-Net
(AudioLDM2) the attention blocks of each resolution level have their own, so a
vector may hold a different ``d_i`` per layer. Files whose layers share one
width are written exactly as before (format version 1, readable by older
steerbridge); a file with per-layer widths is format version 2 and records
``widths`` (layer -> d) in its metadata, checked against its tensors on load,
so an older steerbridge refuses it with "upgrade" instead of misreading it.

Vectors support arithmetic (``2 * happy - 0.5 * calm``) when they share model
and site, which makes blends and multi-concept presets natural.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import tempfile
import typing as tp
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from steerbridge.engine.runtime.errors import VectorFileError, VectorMismatchError
from steerbridge.engine.vocab import SITES

__all__ = ["ConceptVector", "VectorMeta", "load_vector", "save_vector", "FORMAT_VERSION", "SITES"]

FORMAT_VERSION = 2  # the newest this code reads and writes; 1 = one width for all layers


@dataclass(frozen=True)
class VectorMeta:
    concept: str
    site: str
    method: str
    fingerprint: str
    normalized: bool = False
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    site_norms: Mapping[int, float] = field(default_factory=dict)
    created: str = ""
    extra: Mapping[str, tp.Any] = field(default_factory=dict)

    def to_json(self, layers: tuple[int, ...], widths: Mapping[int, int] | None = None) -> str:
        """``widths``: per-layer widths when they differ (a version-2 file); None writes version 1."""
        d = dataclasses.asdict(self)
        d["site_norms"] = {str(k): float(v) for k, v in self.site_norms.items()}
        d.update(format_version=1 if widths is None else 2, layers=list(layers))
        if widths is not None:
            d["widths"] = {str(k): int(v) for k, v in sorted(widths.items())}
        return json.dumps(d, sort_keys=True)


@dataclass(frozen=True, eq=False)
class ConceptVector:
    """Directions per layer (``[d]`` or ``[steps, d]``; ``d`` may differ per layer) plus where they came from."""

    tensors: Mapping[int, torch.Tensor]
    meta: VectorMeta

    def __post_init__(self) -> None:
        if not self.tensors:
            raise VectorFileError(f"concept vector '{self.meta.concept}' has no layers")
        if self.meta.site not in SITES:
            raise VectorFileError(f"unknown site '{self.meta.site}'; expected one of {SITES}")
        if any(t.dim() not in (1, 2) or t.shape[-1] < 1 for t in self.tensors.values()):
            raise VectorFileError(f"concept vector '{self.meta.concept}': every layer must be [d] or "
                                  f"[steps, d]; got {[tuple(t.shape) for t in self.tensors.values()]}")

    concept = property(lambda self: self.meta.concept)
    site = property(lambda self: self.meta.site)
    method = property(lambda self: self.meta.method)
    fingerprint = property(lambda self: self.meta.fingerprint)

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(self.tensors))

    @property
    def widths(self) -> dict[int, int]:
        """Each layer's width ``d`` (they differ between a U-Net's resolution levels)."""
        return {l: int(self.tensors[l].shape[-1]) for l in self.layers}

    @property
    def uniform(self) -> bool:
        """Whether every layer has the same width (a version-1 file)."""
        return len(set(self.widths.values())) == 1

    @property
    def dim(self) -> int:
        """The one width of every layer; an error for a vector whose widths differ per layer (use ``widths``)."""
        if not self.uniform:
            raise VectorFileError(f"vector '{self.concept}' has a different width per layer ({self.widths}); "
                                  "ask for one layer's width with .widths[layer]")
        return int(next(iter(self.tensors.values())).shape[-1])

    def tensor(self, layer: int) -> torch.Tensor:
        if layer not in self.tensors:
            raise VectorFileError(f"vector '{self.concept}' has no layer {layer}; it has {list(self.layers)}")
        return self.tensors[layer]

    @property
    def content_hash(self) -> str:
        # Only what changes the audio: not the creation time or the prompts' wording.
        h = hashlib.sha256(f"{self.site}:{self.fingerprint}:{self.layers}".encode())
        for layer in self.layers:
            h.update(self.tensors[layer].detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:24]

    def with_tensors(self, tensors: Mapping[int, torch.Tensor], **meta_changes: tp.Any) -> "ConceptVector":
        return ConceptVector(dict(tensors), dataclasses.replace(self.meta, **meta_changes))

    # --- arithmetic (repeng-style blends) -------------------------------------------------
    def _combine(self, other: "ConceptVector", sign: float, op: str) -> "ConceptVector":
        if (other.site, other.fingerprint) != (self.site, self.fingerprint):
            raise VectorMismatchError(f"cannot combine '{self.concept}' ({self.site}, model {self.fingerprint}) "
                                      f"with '{other.concept}' ({other.site}, model {other.fingerprint})")
        clash = {l: (self.widths[l], other.widths[l]) for l in set(self.layers) & set(other.layers)
                 if self.widths[l] != other.widths[l]}
        if clash:
            raise VectorMismatchError(f"cannot combine '{self.concept}' with '{other.concept}': widths differ at "
                                      f"layers {clash} (layer: (d, d'))")
        layers = set(self.layers) | set(other.layers)
        out = {}
        for l in layers:
            a, b = self.tensors.get(l), other.tensors.get(l)
            out[l] = a if b is None else (sign * b if a is None else a + sign * b)
        return self.with_tensors(out, concept=f"({self.concept} {op} {other.concept})", method="blend")

    def __add__(self, other: "ConceptVector") -> "ConceptVector":
        return self._combine(other, 1.0, "+")

    def __sub__(self, other: "ConceptVector") -> "ConceptVector":
        return self._combine(other, -1.0, "-")

    def __mul__(self, k: float) -> "ConceptVector":
        return self.with_tensors({l: t * float(k) for l, t in self.tensors.items()},
                                 concept=f"{float(k):g}*{self.concept}")

    __rmul__ = __mul__

    def __neg__(self) -> "ConceptVector":
        return self * -1.0


def save_vector(vector: ConceptVector, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file + fsync + rename): a crash never leaves half a file."""
    path = Path(path)
    meta = dataclasses.replace(vector.meta, created=vector.meta.created or _dt.datetime.now(_dt.UTC).isoformat())
    blob = st_save({f"layer.{l}": t.detach().to(torch.float32).cpu().contiguous() for l, t in vector.tensors.items()},
                   metadata={"steerbridge": meta.to_json(vector.layers,
                                                         None if vector.uniform else vector.widths)})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; vector files are shared like presets
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_REDO = "re-extract it with `steerbridge extract` (the file is damaged or was not written by steerbridge)"


def _parse_meta(raw: str, path: Path) -> tuple[VectorMeta, dict[int, int] | None]:
    """The metadata and, for a version-2 file, its recorded per-layer widths."""
    try:
        d = json.loads(raw)
        if not isinstance(d, dict):
            raise TypeError(f"expected a JSON object, got {type(d).__name__}")
        version = d.pop("format_version")
        d.pop("layers", None)
        widths = d.pop("widths", None)
        if not isinstance(version, int) or isinstance(version, bool):
            raise TypeError(f"format_version {version!r} is not an integer")
        if version > FORMAT_VERSION:
            raise VectorFileError(f"{path}: format version {version} is newer than this steerbridge "
                                  f"({FORMAT_VERSION}); upgrade steerbridge")
        d["site_norms"] = {int(k): float(v) for k, v in dict(d.get("site_norms", {})).items()}
        d["positive"], d["negative"] = tuple(d.get("positive", ())), tuple(d.get("negative", ()))
        if widths is not None:
            widths = {int(k): int(v) for k, v in dict(widths).items()}
        return VectorMeta(**d), widths
    except VectorFileError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise VectorFileError(f"{path}: malformed 'steerbridge' metadata ({type(exc).__name__}: {exc}); "
                              f"{_REDO}") from exc


def load_vector(path: str | os.PathLike[str], *, model: tp.Any = None, fingerprint: str | None = None,
                site: str | None = None) -> ConceptVector:
    """Read a vector file; refuse one made for another model (``model`` or ``fingerprint``) or site."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise VectorFileError(f"{path}: vector files are .safetensors (pickle files are never loaded)")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get("steerbridge")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise VectorFileError(f"{path}: no such vector file") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises several error types
        raise VectorFileError(f"{path}: not a readable safetensors file ({exc})") from exc
    if raw_meta is None:
        raise VectorFileError(f"{path}: no 'steerbridge' metadata; was it written by `steerbridge extract`?")
    meta, widths = _parse_meta(raw_meta, path)
    by_layer: dict[int, torch.Tensor] = {}
    for key, t in tensors.items():
        if not key.startswith("layer.") or not key[6:].isdigit():
            raise VectorFileError(f"{path}: unexpected tensor '{key}' (expected layer.<i>); {_REDO}")
        if t.is_complex() or not torch.isfinite(t).all():
            raise VectorFileError(f"{path}: tensor '{key}' holds NaN, inf or complex values; {_REDO}")
        by_layer[int(key[6:])] = t.to(torch.float32)
    try:
        vec = ConceptVector(by_layer, meta)
    except VectorFileError as exc:  # the value checks do not know the file: name it here
        raise VectorFileError(f"{path}: {exc}; {_REDO}") from None
    if widths is not None and widths != vec.widths:
        raise VectorFileError(f"{path}: its metadata records widths {widths} but its tensors have {vec.widths}; "
                              f"{_REDO}")
    want_fp = fingerprint if fingerprint is not None else getattr(model, "fingerprint", None)
    if want_fp is not None and vec.fingerprint != want_fp:
        raise VectorMismatchError(
            f"{path} was made for model {vec.fingerprint}, but the loaded model is {want_fp}. "
            "Re-extract the vector with `steerbridge extract` on this model.")
    if site is not None and vec.site != site:
        raise VectorMismatchError(f"{path} was taken at site '{vec.site}', expected '{site}'")
    if model is not None and max(vec.layers) >= model.num_layers:
        raise VectorMismatchError(f"{path}: layer {max(vec.layers)} does not exist; the model has "
                                  f"{model.num_layers} layers")
    if model is not None:
        wrong = {l: (d, model.site_dim(vec.site, l)) for l, d in vec.widths.items() if d != model.site_dim(vec.site, l)}
        if wrong:
            raise VectorMismatchError(f"{path}: vector widths do not match the model's '{vec.site}' site at layers "
                                      + ", ".join(f"{l} (vector d={a}, model d={b})" for l, (a, b) in wrong.items()))
    return vec
