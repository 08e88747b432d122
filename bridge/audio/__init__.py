"""Audio out: loops and their gains (`loops`), the real-time mixer (`player`), the
sinks it plays through (`sinks`: PortAudio, WAV files, null), PortAudio/JACK
discovery (`portaudio`) and WAV files (`wavfile`). Nothing here knows the engine.
"""
