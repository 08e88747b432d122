"""MIDI: decoding CC, 14-bit CC pairs and NRPN against preset bindings (`decode`),
and the port inputs with MIDI learn and soft takeover (`router`).
"""
