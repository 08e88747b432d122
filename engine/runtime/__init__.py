"""The engine at run time: load a model, steer it, render.

Model sources and fingerprints (`source`, `components`), vector files
(`vectors`), the steering wrappers (`steering`), rendering (`render`) and the
engine's errors. What the live server needs, and nothing more.
"""
