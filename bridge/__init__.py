"""steerbridge bridge: presets, control surfaces, the live session, audio out, the engine link, the CLI.

Knows the engine's public API (:mod:`steerbridge.engine`), never torch
internals, Qt or the GUI (the CLI's ``gui`` command is the one place that
starts the panel, by name). See docs/architecture.md for the picture.
"""
