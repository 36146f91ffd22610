"""perfd's language server (pygls) over the shared engine."""
