"""Which layers carry a concept: activation patching (`patching`) and per-layer probes (`probes`).
"""
