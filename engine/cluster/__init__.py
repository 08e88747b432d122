"""Spreading a sweep's renders over workers: in order here (`pool`), or on a Ray cluster (`ray_pool`).
"""
