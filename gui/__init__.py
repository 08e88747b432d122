"""The PyQt6 panel (``steerbridge gui``): knobs, scene, the loop playing now, presets.

gui knows bridge, never engine or torch: it drives a :class:`bridge.session.Session`
(the runtime `serve` runs) and reads it through :class:`bridge.monitor.SessionMonitor`.
Start it with :func:`gui.app.run`, or build it in tests with :func:`gui.app.create_panel`.
"""

__all__: list[str] = []
