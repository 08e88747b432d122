"""RayPool: a sweep's renders as Ray tasks on actors that each keep one model resident.

Each actor loads the model once (``load_model(source)``) and checks its fingerprint
against the caller's, then runs ``fn(model, item)`` for the items it is handed (Ray's
``ActorPool``: the next item goes to the next idle actor). Results are gathered in item
order, so a sweep computes exactly what :class:`~steerbridge.engine.cluster.pool.LocalPool`
computes. For bit-equal floats the actors use the caller's number of torch threads.

No ``address``: a local Ray instance (``num_cpus``, no dashboard) that this pool starts and
stops. With an address (``auto`` or ``HOST:PORT``) it joins that cluster and leaves it
running. Ray's usage reporting is switched off (``RAY_USAGE_STATS_ENABLED=0``) before Ray
starts. Items and results travel with Ray's own serialisation between this program's own
processes; nothing loaded from outside is unpickled.
"""

from __future__ import annotations

import os
import typing as tp
from collections.abc import Callable, Sequence

from steerbridge.engine.runtime.errors import EngineError

__all__ = ["RayPool", "import_ray", "RAY_HINT"]

RAY_HINT = "Ray is not installed: pip install 'steerbridge[ray]' (or pip install ray)"


def import_ray() -> tp.Any:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before Ray reads it: no usage reporting
    try:
        import ray
    except ImportError:
        raise EngineError(RAY_HINT) from None
    return ray


class _ModelHost:
    """The actor: one resident model; runs work items on it."""

    def __init__(self, source: str, device: str, threads: int) -> None:
        import torch

        from steerbridge.engine.runtime.render import load_model

        torch.set_num_threads(threads)
        self.model = load_model(source, device=device)

    def fingerprint(self) -> str:
        return self.model.fingerprint

    def run(self, fn: Callable[[tp.Any, tp.Any], tp.Any], item: tp.Any) -> tp.Any:
        return fn(self.model, item)


class RayPool:
    """``actors`` resident copies of ``source`` on Ray; ``map`` keeps item order."""

    def __init__(self, source: str, *, fingerprint: str, address: str | None = None, actors: int | None = None,
                 device: str = "cpu", num_cpus: int = 2, threads: int | None = None) -> None:
        import torch

        ray = self._ray = import_ray()
        self._started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, include_dashboard=False, logging_level="warning", log_to_driver=False)
                else:  # workers' own logs stay in Ray's session folder; their errors still reach ray.get
                    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="warning",
                             log_to_driver=False)
            except Exception as exc:  # ConnectionError, RuntimeError: say where and why
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise EngineError(f"could not start or join {where}: {exc}") from None
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, actors or cpus)
        host = ray.remote(num_cpus=1 if cpus >= count else 0)(_ModelHost)
        self.actors = [host.remote(str(source), device, threads or torch.get_num_threads()) for _ in range(count)]
        got = ray.get([a.fingerprint.remote() for a in self.actors])
        if any(f != fingerprint for f in got):
            self.close()
            raise EngineError(f"a Ray worker loaded {source!r} with fingerprint {got} instead of {fingerprint}: "
                              "every machine of the cluster needs the same model files")

    def map(self, fn: Callable[[tp.Any, tp.Any], tp.Any], items: Sequence[tp.Any], *,
            progress: Callable[[int, int], None] | None = None) -> list[tp.Any]:
        from ray.util import ActorPool

        out = []
        for i, result in enumerate(ActorPool(self.actors).map(lambda a, item: a.run.remote(fn, item), items)):
            out.append(result)  # ActorPool.map yields in item order
            if progress is not None:
                progress(i + 1, len(items))
        return out

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            self._ray.kill(actor)
        self.actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
