"""perfd: a warm daemon that answers "what is next, and what do I tell the model?".

This module is imported by the thin CLI client on every call, so it must stay
empty of imports: see ../shared/PERF-NOTES.md.
"""

__version__ = "0.1.0"
