"""The live session: it wires control state, the render scheduler (`scheduler`),
the loop cache (`cache`), the voice bank (`voicebank`), the player and a sink
(`session`); reports events and status (`events`), shows pre-render progress
(`progress`), runs OSC and MIDI (`surfaces`), autosaves knob values
(`autosave`) and is watched by panels (`monitor`).
"""
