"""The panel's widgets: knob cards, lights, the scene row, the status strip, the waveform.
"""
