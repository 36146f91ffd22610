"""What a person or an editor starts: the thin client, auto-start, daemon control, the LSP relay.

Imported on every CLI call: keep it empty (see ../shared/PERF-NOTES.md).
"""
