"""Concept vectors from contrastive prompts: recording sites (`record`, `frames`),
CAA / DiffMean (`caa`), AUSteer (`austeer`), SAE features (`sae`) and the
prompt-blend baseline (`prompt_blend`).
"""
