"""Pictures for the offline commands: spectrogram grids (`pictures`), benchmark curves and heat maps (`benchplots`).
"""
