"""One place that turns an ``--engine`` choice into an :class:`EngineClient` (serve, gui, render)."""

from __future__ import annotations

from steerbridge.bridge.engine_link.client import EngineClient, InProcessClient, WorkerClient

__all__ = ["make_client", "client_key", "ENGINE_HELP"]

ENGINE_HELP = ("where the model renders: 'worker' (a local process, the default), 'inprocess', or "
               "tcp://HOST:PORT of a `steerbridge engine-server` (another machine, e.g. a GPU box)")


def client_key(token_file: str | None) -> bytes:
    """The token for a remote engine: ``token_file``, else the one `engine-server` writes on this machine."""
    from steerbridge.bridge.engine_link.wire import default_token_path, load_token

    return load_token(token_file or default_token_path())


def make_client(engine: str, *, source: str, device: str = "cpu", backend: str = "torch",
                token_file: str | None = None, threads: int | None = None, family: str | None = None) -> EngineClient:
    """A client for ``engine``; a remote one ignores ``source`` and ``family`` (the server hosts its own model).

    ``threads``: the worker's torch threads (None: every core; only the worker uses it).
    ``family``: the model family of a ``source`` folder whose files do not name it.
    """
    if engine == "worker":
        return WorkerClient(source, device=device, backend=backend, threads=threads, family=family)
    if engine == "inprocess":
        return InProcessClient(source, device=device, backend=backend, family=family)
    if engine.startswith("tcp://"):
        from steerbridge.bridge.engine_link.remote import RemoteClient, check_address

        return RemoteClient(check_address(engine), key=client_key(token_file))
    raise ValueError(f"engine {engine!r}: use 'worker', 'inprocess' or tcp://HOST:PORT")
