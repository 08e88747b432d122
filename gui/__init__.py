"""The PyQt6 panel (``steerbridge gui``): knobs, scene, the loop playing now, presets.

gui knows bridge, never engine or torch: it drives a :class:`steerbridge.bridge.live.session.Session`
(the runtime `serve` runs) and reads it through :class:`steerbridge.bridge.live.monitor.SessionMonitor`.
Start it with :func:`steerbridge.gui.app.run`, or build it in tests with :func:`steerbridge.gui.app.create_panel`.
"""

__all__: list[str] = []
