"""What both transports need at run time (the daemon and `perfd lsp --standalone`): stats, the watcher, heap tools."""
