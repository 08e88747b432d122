"""Model families: the only code that knows a family's internals.

`base` holds the :class:`ModelAdapter` protocol, the :class:`Family` record and
the registry of families. One module per family: `stable_audio` (stable-audio-tools
DiT models, loaded by `sat_source`; `sat` is the one import gateway to
stable-audio-tools), and through diffusers `diffusers_sao` (Stable Audio Open),
`ace_step` (ACE-Step 1.5), `stable_audio_3` (Stable Audio 3) and `audioldm2`, which
share `diffusers_common` (and `hf_cache`, for stock parts a folder lacks). A new family lands here.
"""
