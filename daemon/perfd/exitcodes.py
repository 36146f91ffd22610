"""perfd's exit codes, one place: each code means one thing, whichever command or path returns it.

Import-free, so the thin client reads them at no cost. README.md ("Exit codes")
lists them for people and scripts; a test holds the two to each other.
"""

OK = 0
# What was asked cannot be done as asked, and the one-line message says why: an unknown plan or
# achievement, a bad setting, no workspace, no daemon to stop or ask, a daemon that cannot start or serve.
ERROR = 1
# The command line itself is wrong: an unknown command or option, a missing or malformed value.
USAGE = 2
# `perfd run`: a model call failed (after its retries). No model configured, or a budget that refuses
# the call before anything is sent, is ERROR: the user's settings, not a failure.
MODEL = 3
# `perfd daemon run`: another daemon already serves this workspace (it is left running).
ALREADY_RUNNING = 4
# `perfd run --write`: an answer was paid for but the file could not be written (the OS refused: a file
# where a folder should be, a link, no space, no permission). The answer is printed and kept in the history.
WRITE = 5
# Interrupted (Ctrl-C): 128 + SIGINT, as shells report it.
INTERRUPTED = 130

# code -> its meaning, as README.md's table says it (kept equal by a test).
MEANINGS = (
    (OK, "success"),
    (ERROR, "what was asked cannot be done as asked; the message says why"),
    (USAGE, "the command line is wrong (unknown command or option, bad value)"),
    (MODEL, "`perfd run`: a model call failed (after its retries)"),
    (ALREADY_RUNNING, "`perfd daemon run`: a daemon already serves this workspace"),
    (WRITE, "`perfd run --write`: an answer could not be written; it is printed and kept "
            "(`perfd stats --history --answer ID`)"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)
