"""The live session: it wires control state, the render scheduler, the loop cache,
the voice bank, the player and a sink (`session`); reports events and status
(`events`), shows pre-render progress (`progress`), runs OSC and MIDI
(`surfaces`), autosaves knob values (`autosave`) and is watched by panels
(`monitor`).
"""
