"""Steering injection: add ``alpha * v`` to chosen sites' outputs, compile-safe.

How it works. Each steered site (a module per layer, named by the model
adapter) is swapped for a :class:`SiteWrapper` that runs the original module
and adds ``gate[row] * offset[step]``. Everything the wrapper reads lives in
tensors that are updated *in place*:

* ``offset``  ``[S, d]`` per wrapper: the sum over concepts of their scaled
  directions (``S`` = 1, or one row per diffusion step for per-step vectors;
  ``d`` is that layer's width, which differs between a U-Net's levels);
* ``step``    a 0-d long tensor shared by all wrappers, the current diffusion step;
* ``gate``    ``[max_batch]`` shared row gates: 1 for rows to steer, 0 otherwise.

Why not ``register_forward_hook``: under ``ENABLE_TORCH_COMPILE=1``
stable-audio-tools compiles ``TransformerBlock.forward`` and hooks on its
submodules are silently skipped. A swapped-in module is traced like any other
child, and because the buffers change in place a knob move (new alpha) or a
new vector causes no recompilation.

The model adapter drives :class:`StepGate` once per model call (which rows are
conditional, given the CFG layout) and once per finished diffusion step.
"""

from __future__ import annotations

import contextlib
import typing as tp
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from steerbridge.engine.runtime.errors import EngineError, VectorMismatchError
from steerbridge.engine.runtime.vectors import ConceptVector
from steerbridge.engine.vocab import ALPHA_UNITS, CFG_MODES, DEFAULT_ALPHA_UNITS, DEFAULT_CFG_MODE

__all__ = ["Steering", "SteeringTerm", "StepGate", "SiteModule", "SiteWrapper", "SteeringHandle", "steer", "CFG_MODES", "ALPHA_UNITS",
           "site_offsets", "site_widths"]



@dataclass(frozen=True)
class SteeringTerm:
    """One concept: its vector, strength and where it goes."""

    vector: ConceptVector
    alpha: float
    layers: tuple[int, ...] | None = None  # None: every layer the vector has
    one_to_all: int | None = None  # inject this layer's direction at every layer in `layers`
    orthogonalize_against: tuple[ConceptVector, ...] = ()

    def __post_init__(self) -> None:
        # a block output and a cross-attention output are different spaces of the same width: removing one's
        # direction from the other would pass every width check and still mean nothing
        if other := [o for o in self.orthogonalize_against if o.site != self.vector.site]:
            raise VectorMismatchError(
                f"cannot orthogonalise '{self.vector.concept}' (site {self.vector.site}) against "
                f"{', '.join(f'{o.concept} (site {o.site})' for o in other)}: extract both at the same site")

    def target_layers(self) -> tuple[int, ...]:
        return tuple(self.layers) if self.layers is not None else self.vector.layers


@dataclass(frozen=True)
class Steering:
    """Everything that decides what is added where, for one render."""

    terms: tuple[SteeringTerm, ...] = ()
    cfg_mode: str = DEFAULT_CFG_MODE
    start_step: int = 0
    alpha_units: str = DEFAULT_ALPHA_UNITS
    meta: dict[str, tp.Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.cfg_mode not in CFG_MODES:
            raise EngineError(f"cfg_mode '{self.cfg_mode}' is not one of {CFG_MODES}")
        if self.alpha_units not in ALPHA_UNITS:
            raise EngineError(f"alpha_units '{self.alpha_units}' is not one of {ALPHA_UNITS}")
        if self.start_step < 0:
            raise EngineError(f"start_step must be >= 0, got {self.start_step}")


def _orthogonalize(v: torch.Tensor, others: list[torch.Tensor]) -> torch.Tensor:
    """Remove from ``v`` its projection on the span of ``others`` (row-wise for [S, d])."""
    if not others:
        return v
    rows = v if v.dim() == 2 else v[None]
    out = []
    for s, row in enumerate(rows):
        basis: list[torch.Tensor] = []
        for o in others:  # Gram-Schmidt on the others first, so overlapping others are handled
            b = (o if o.dim() == 1 else o[min(s, o.shape[0] - 1)]).to(torch.float64).clone()
            for q in basis:
                b -= (b @ q) * q
            n = b.norm()
            if n > 1e-12:
                basis.append(b / n)
        r = row.to(torch.float64).clone()
        for q in basis:
            r -= (r @ q) * q
        out.append(r.to(v.dtype))
    res = torch.stack(out)
    return res if v.dim() == 2 else res[0]


def site_widths(adapter: tp.Any, site: str) -> tuple[int, ...]:
    """Each layer's width at ``site`` (a U-Net's levels differ; a transformer's layers share one)."""
    return tuple(int(adapter.site_dim(site, layer)) for layer in range(adapter.num_layers))


def _width_error(vec: ConceptVector, layer: int, src: int, have: int, want: int, dims: Sequence[int]) -> EngineError:
    if src == layer:
        return VectorMismatchError(f"vector '{vec.concept}' has d={have} at layer {layer}, where site "
                                   f"'{vec.site}' has d={want}")
    same = [l for l, d in enumerate(dims) if d == have]
    return EngineError(f"One-to-All: layer {src}'s direction of '{vec.concept}' (d={have}) cannot go to layer "
                       f"{layer} (d={want}): this model's layers differ in width. Target only layers of "
                       f"width {have}: {same}")


def site_offsets(steering: Steering, *, site: str, num_layers: int,
                 dim: int | Sequence[int]) -> dict[int, torch.Tensor]:
    """Sum of scaled directions per layer for one site: ``{layer: [S, d_layer]}`` (float32).

    ``dim``: the site's width, or one width per layer (a U-Net). Orthogonalisation
    is per layer (against the other vectors' directions at the same layer, which
    share its width); One-to-All copies the source layer's direction only to
    layers of the same width and refuses others, naming the layers that fit.
    """
    dims = [int(dim)] * num_layers if isinstance(dim, int) else [int(d) for d in dim]
    if len(dims) != num_layers:
        raise EngineError(f"site_offsets: {len(dims)} widths for {num_layers} layers")
    sums: dict[int, torch.Tensor] = {}
    for term in steering.terms:
        vec = term.vector
        if vec.site != site:
            continue
        for layer in term.target_layers():
            if not 0 <= layer < num_layers:
                raise EngineError(f"layer {layer} of '{vec.concept}' is out of range 0..{num_layers - 1}")
            src = term.one_to_all if term.one_to_all is not None else layer
            v = vec.tensor(src).to(torch.float32)
            if v.shape[-1] != dims[layer]:
                raise _width_error(vec, layer, src, v.shape[-1], dims[layer], dims)
            others = [o.tensor(src).to(torch.float32) for o in term.orthogonalize_against if src in o.tensors]
            bad = [o.concept for o in term.orthogonalize_against if src in o.tensors and o.widths[src] != v.shape[-1]]
            if bad:
                raise VectorMismatchError(f"cannot orthogonalise '{vec.concept}' against {bad} at layer {src}: "
                                          "their widths differ (vectors of another model or site?)")
            v = _orthogonalize(v, others)
            if steering.alpha_units == "norm":
                norm = vec.meta.site_norms.get(layer, vec.meta.site_norms.get(src))
                if norm is None:
                    raise EngineError(f"alpha_units='norm' needs the site norm of layer {layer}, which vector "
                                      f"'{vec.concept}' does not record; re-extract it or use absolute units")
                length = v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                v = v * (norm / length)
            d = dims[layer]
            add = (term.alpha * v).reshape(-1, d)
            cur = sums.get(layer)
            if cur is None:
                sums[layer] = add
            else:  # broadcast constant against per-step
                steps = max(cur.shape[0], add.shape[0])
                sums[layer] = cur.expand(steps, d) + add.expand(steps, d)
    return sums


class StepGate(nn.Module):
    """Shared, in-place state: current diffusion step and per-row gates."""

    def __init__(self, *, max_batch: int = 64) -> None:
        super().__init__()
        self.register_buffer("step", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("gate", torch.zeros(max_batch), persistent=False)
        self.cfg_mode = DEFAULT_CFG_MODE
        self.start_step = 0
        self.steps_done = 0
        # The family's CFG batch layout: stable-audio-tools batches [cond, uncond],
        # diffusers pipelines [uncond, cond]. Set once by the adapter.
        self.uncond_first = False
        # What the latest model call looked like, for recorders (steerbridge.engine.extraction.record).
        self.last_rows = 0
        self.last_cfg_active = False

    def begin_render(self) -> None:
        self.steps_done = 0
        self.step.fill_(0)

    def step_done(self) -> None:
        """Called by the sampler's per-step callback (not per model call: Heun makes two)."""
        self.steps_done += 1
        self.step.fill_(self.steps_done)

    def before_forward(self, *, rows: int, cfg_active: bool) -> None:
        """Set row gates for one model call of ``rows`` rows.

        With CFG the batch is ``[cond, uncond]`` or, with ``uncond_first``,
        ``[uncond, cond]``; with CFG off the single pass is conditional.
        """
        if rows > self.gate.numel():
            raise EngineError(f"batch of {rows} rows exceeds the steering gate size {self.gate.numel()}")
        self.last_rows, self.last_cfg_active = rows, cfg_active
        cond = float(self.cfg_mode in ("cond_only", "both"))
        uncond = float(self.cfg_mode in ("both", "uncond_only"))
        g = self.gate
        if self.steps_done < self.start_step:
            g.zero_()
        elif cfg_active:
            half = rows // 2
            first, second = (uncond, cond) if self.uncond_first else (cond, uncond)
            g[:half].fill_(first)
            g[half:rows].fill_(second)
        else:
            g[:rows].fill_(cond)

    def cond_rows(self, rows: int) -> slice:
        """Which of the latest call's ``rows`` rows are conditional (for recorders and patches)."""
        if not self.last_cfg_active:
            return slice(0, rows)
        half = rows // 2
        return slice(half, rows) if self.uncond_first else slice(0, half)


class SiteModule(nn.Module):
    """Base of every module swapped in at a site: reads of attributes it lacks go to the wrapped ``inner``.

    Model code may look inside a block it calls (ACE-Step's DiT reads
    ``layers[0].self_attn.processor``); with a wrapper in the slot that read must
    still find the original block's attribute.
    """

    def __getattr__(self, name: str) -> tp.Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self._modules.get("inner")
            if inner is None or name == "inner":
                raise
            return getattr(inner, name)


class SiteWrapper(SiteModule):
    """Runs the original site module, then adds the gated offset for the current step."""

    def __init__(self, inner: nn.Module, *, gate: StepGate, dim: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__()
        self.inner = inner
        # The shared tensors are registered (non-persistent) in every wrapper, so a
        # compiled graph sees them as module buffers; state_dict() is unchanged.
        self.register_buffer("step", gate.step, persistent=False)
        self.register_buffer("gate", gate.gate, persistent=False)
        self.register_buffer("offset", torch.zeros(1, dim, dtype=dtype, device=device), persistent=False)
        # Eager-only shortcut: a wrapper with nothing to add returns the site's output
        # untouched. Compiled graphs never read this flag (see forward), so turning a
        # layer on or off there changes a buffer, not a guard: no recompilation.
        self.active = False

    def set_offset(self, offset: torch.Tensor | None) -> None:
        self.active = offset is not None
        if offset is None:
            self.offset.zero_()
            return
        if offset.shape != self.offset.shape:  # per-step rows changed: the one structural change
            self.offset = offset.to(self.offset.dtype, copy=True).to(self.offset.device)
        else:
            self.offset.copy_(offset)

    def forward(self, *args: tp.Any, **kwargs: tp.Any) -> torch.Tensor:
        y = self.inner(*args, **kwargs)
        if not torch.compiler.is_compiling() and not self.active:
            return y
        rows = y.shape[0]
        idx = torch.clamp(self.step, max=self.offset.shape[0] - 1).reshape(1)
        off = self.offset.index_select(0, idx)  # [1, d]
        gate = self.gate[:rows].view(rows, *([1] * (y.dim() - 1)))
        return torch.addcmul(y, gate if gate.dtype == y.dtype else gate.to(y.dtype), off)


class SteeringHandle:
    """Swaps wrappers in at every layer of the given sites; ``set`` changes steering in place.

    Use as a context manager (detached in ``finally``) or call ``attach`` once and
    keep it (the resident server). Attaching wrappers at every layer up front
    means changing alphas, vectors or even layers never changes the module tree.
    """

    def __init__(self, adapter: tp.Any, *, sites: tuple[str, ...] | None = None) -> None:
        self.adapter = adapter
        self.sites = tuple(sites) if sites is not None else tuple(adapter.sites)
        self.wrappers: dict[tuple[str, int], SiteWrapper] = {}
        self._originals: list[tuple[nn.Module, str, nn.Module]] = []

    @property
    def attached(self) -> bool:
        return bool(self._originals)

    def attach(self) -> "SteeringHandle":
        if self.attached:
            return self
        gate = self.adapter.gate
        try:
            for site in self.sites:
                for layer, dim in enumerate(site_widths(self.adapter, site)):
                    parent, name = self.adapter.site_slot(site, layer)
                    inner = getattr(parent, name)
                    ref = next(self.adapter.parameters())
                    wrapper = SiteWrapper(inner, gate=gate, dim=dim, dtype=ref.dtype, device=ref.device)
                    setattr(parent, name, wrapper)
                    self._originals.append((parent, name, inner))
                    self.wrappers[(site, layer)] = wrapper
        except BaseException:
            self.detach()  # undo the part that was swapped in
            raise
        return self

    def detach(self) -> None:
        """Put the original modules back, exactly (the same objects)."""
        while self._originals:
            parent, name, inner = self._originals.pop()
            setattr(parent, name, inner)
        self.wrappers.clear()
        self.adapter.gate.cfg_mode, self.adapter.gate.start_step = DEFAULT_CFG_MODE, 0

    def set(self, steering: Steering | None) -> None:
        """Write offsets for ``steering`` (None: no steering) into the wrappers, in place."""
        if not self.attached:
            raise EngineError("steering handle is not attached")
        steering = steering or Steering()
        per_site = {site: site_offsets(steering, site=site, num_layers=self.adapter.num_layers,
                                       dim=site_widths(self.adapter, site)) for site in self.sites}
        unknown = {t.vector.site for t in steering.terms} - set(self.sites)
        if unknown:
            raise EngineError(f"steering uses site(s) {sorted(unknown)} but only {self.sites} are attached")
        gate = self.adapter.gate
        gate.cfg_mode, gate.start_step = steering.cfg_mode, steering.start_step
        for (site, layer), wrapper in self.wrappers.items():
            wrapper.set_offset(per_site[site].get(layer))

    def __enter__(self) -> "SteeringHandle":
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()


@contextlib.contextmanager
def steer(adapter: tp.Any, steering: Steering) -> Iterator[SteeringHandle]:
    """Attach, set ``steering``, and always detach on the way out."""
    handle = SteeringHandle(adapter).attach()
    try:
        handle.set(steering)
        yield handle
    finally:
        handle.detach()
