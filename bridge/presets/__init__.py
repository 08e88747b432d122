"""Presets: the value classes and load/save (`model`), the TOML schema with line
numbers in errors (`schema`, `tomlscan`), and where the shipped presets are
(`shipped`).
"""
