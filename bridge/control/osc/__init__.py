"""OSC: the packet guard in front of python-osc (`guard`), the server and its
addresses (`server`), feedback to subscribers (`feedback`).
"""
