"""Serve a preset, move one knob over real UDP OSC, and return the exact render that lands.

Shared by the per-family `serve` tests: a knob move must bring the exact render
(the WAV the session writes) for the knob's new alpha.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from steerbridge.bridge.live.session import Session, SessionOptions
from support.waiting import wait_for

__all__ = ["exact_render_after_knob"]


def exact_render_after_knob(preset: Path, knob: str, value: float, *, loops: Path) -> tuple[str, str, float]:
    """(WAV path, kind, the knob's alpha in the state) of the first exact loop after the move."""
    options = SessionOptions(output=f"wav:{loops}", osc="127.0.0.1:0", midi=None, engine="inprocess",
                             grid="full", progress=False)
    got: list[tuple] = []
    arrived = threading.Event()
    dispatcher = Dispatcher()
    dispatcher.map("/steer/loop", lambda addr, *args: (got.append(args), arrived.set()) if args[1] == "exact"
                   else None)
    listener = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    session = Session(preset, options=options, say=lambda _: None)
    try:
        session.start(timeout=240)
        host, port = session.surfaces.osc.address
        client = SimpleUDPClient(host, port)
        client.send_message("/steer/subscribe", listener.server_address[1])
        assert wait_for(lambda: bool(session.surfaces.osc.feedback.subscribers), 5)
        client.send_message(f"/steer/knob/{knob}", value)
        assert arrived.wait(120)
        alpha = session.state.snapshot().knobs[knob].alpha
    finally:
        session.close()
        listener.shutdown()
        listener.server_close()
    path, kind = got[0]
    return path, kind, alpha
