"""The embedded demo model: procedural corpus, codec, text encoder, training.

Submodules are imported on demand (``steerbridge.engine.demo.corpus`` needs only numpy and
scipy; the model parts need torch and stable-audio-tools).
"""

__all__: list[str] = []
