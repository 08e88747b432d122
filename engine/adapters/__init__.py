"""Model families: the only code that knows a family's internals.

`base` holds the :class:`ModelAdapter` protocol and the registry of families;
one module per family (`stable_audio`: stable-audio-tools DiT models) and, for
stable-audio-tools, its one import gateway (`sat`). A new family lands here.
"""
