"""Small helpers that know nothing of the rest of steerbridge: atomic file writes, copy-on-write listener lists.
"""
