"""The bridge's side of the engine seam: plain-data jobs and events (`jobs`), the
client interface with its in-process and worker-process implementations
(`client`), and what runs inside the worker process (`worker`).
"""
