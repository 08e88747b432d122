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

__all__ = ["exact_render_after_knob", "knob_preset"]

_PRESET = """\
[model]
source = "{source}"
{family}steps = 2

[scene]
prompt = "test loop with piano"
seed = 7
seconds = 0.5

[[knob]]
name = "mood"
vector = "mood.safetensors"
alpha_min = -2.0
alpha_max = 2.0
default = 0.5
stops = 2
"""


def knob_preset(source: str, *, family: str | None = None) -> str:
    """A preset on ``source`` (and ``family``): one knob "mood" (mood.safetensors beside it), 2 steps, 0.5 s."""
    return _PRESET.format(source=source, family=f'family = "{family}"\n' if family is not None else "")


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
