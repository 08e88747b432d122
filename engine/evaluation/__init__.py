"""Measuring steering: audio descriptors (`descriptors`), alignment / preservation /
smoothness (`metrics`), the concept catalogue (`concepts`), the benchmark
(`bench`) and multi-concept steering (`multiconcept`).
"""
