"""The presets and vector files that ship with steerbridge (package data: ``steerbridge.presets``).

No code lives here; :mod:`steerbridge.bridge.presets.shipped` finds these files
by name (``--preset demo``) through :mod:`importlib.resources`.
"""
