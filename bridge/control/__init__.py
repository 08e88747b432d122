"""Control surfaces and the state they write: the versioned knob/scene state
(`state`), OSC (`osc/`) and MIDI (`midi/`).
"""
