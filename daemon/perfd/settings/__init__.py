"""perfd's settings: one schema (schema.py), three sources (sources.py), merged with trust applied (resolve.py).

`perfd.settings.resolve.load(root)` is the one way to read them.
"""
