"""The protocol's error codes, import-free so the thin client can read them too."""

# JSON-RPC 2.0 error codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# application errors (outside the reserved range)
USER_ERROR = 1001  # perfd.engine.errors.UserError; data = UserErrorData
VERSION_MISMATCH = 1002  # data = {"daemon": version, "client": version}
NO_MODEL = 1003  # `run`: the daemon's environment configures no model / lacks the key; data = {"api_key_env": name}
TOO_BUSY = 1004  # the daemon serves its maximum of connections (or this one queued too much); it closes this one
# The workspace's settings that shape the daemon itself ([workspace], [cache], [daemon]) changed since it
# started: it answers this and stops, and the client asks a new daemon (as for another version).
SETTINGS_CHANGED = 1005
# The caller's PERFD_* variables give other [workspace] or [cache] settings than the daemon's: the client
# works in-process for this call, and the daemon goes on serving everyone else.
SETTINGS_DIFFER = 1006
