"""`--ray [ADDRESS]` for the sweep commands (bench, extract, localize): one definition, one meaning."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["add_ray_flags", "ray_problem", "ray_pool"]


def add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="spread the renders over Ray actors, each with the model resident; results are identical "
                        "to a local run. No ADDRESS: a local Ray instance (2 CPUs); 'auto' or HOST:PORT joins a "
                        "cluster. Needs pip install 'steerbridge[ray]'")
    p.add_argument("--ray-actors", type=int, metavar="N",
                   help="with --ray: model copies (default: one per CPU the Ray instance or cluster offers)")


def ray_problem(args: argparse.Namespace) -> str | None:
    """Why --ray cannot work here (checked before loading a model), or None."""
    if args.ray is None:
        if args.ray_actors is not None:
            return "--ray-actors needs --ray"
        return None
    from steerbridge.engine.cluster.ray_pool import import_ray
    from steerbridge.engine.runtime.errors import EngineError

    try:
        import_ray()
    except EngineError as exc:
        return f"--ray: {exc}"
    if args.ray_actors is not None and args.ray_actors < 1:
        return f"--ray-actors {args.ray_actors}: give 1 or more"
    return None


@contextlib.contextmanager
def ray_pool(args: argparse.Namespace, source: str, model: Any) -> Iterator[Any]:
    """The pool ``--ray`` asks for (closed afterwards), or None without ``--ray``."""
    if args.ray is None:
        yield None
        return
    from steerbridge.engine.cluster.ray_pool import RayPool

    pool = RayPool(str(source), fingerprint=model.fingerprint, address=None if args.ray == "local" else args.ray,
                   actors=args.ray_actors, device=str(getattr(model, "device", "cpu")))
    try:
        yield pool
    finally:
        pool.close()
