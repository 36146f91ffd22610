"""The per-workspace daemon: lifecycle, connections, methods, watcher, stats, code cache, heap."""
