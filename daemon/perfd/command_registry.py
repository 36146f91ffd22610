"""The one command registry: every perfd command, its options, and where it is served.

The command-line parser (perfd.app.commands.build_parser), the thin client's
routing (perfd.cli.client), the in-process and daemon paths' "served here"
checks, help, and shell completion (perfd.app.completion) all read this table,
so a command added here is parsed, routed, documented and completed at once.

Imported by the thin client on every call, so it imports nothing (see
../shared/PERF-NOTES.md): the client reads SERVED, a literal, and the option
table is built only when the parser, help or completion asks (commands()).
"""

# Where a command is served (Command.served):
DAEMON = "daemon"  # answered by perfd.app.commands, through the workspace's daemon when one can run
LOCAL = "local"  # only in the caller's process: writes files in the caller's name, or needs no workspace
OWN = "own"  # its own entry point in the client: `run` (streams), `lsp` (a relay), `mcp`, `daemon` (control)

# Each command, in the order help lists it, and where it is served (kept in perfd/__init__.py, which the
# thin client loads anyway: see there).
from perfd import HELP_FLAGS as HELP_FLAGS
from perfd import SERVED as SERVED

# How an option takes its value (Option.kind):
FLAG = "flag"  # no value (store_true)
TEXT = "text"  # one string
INT = "int"  # one whole number
CHOICE = "choice"  # one of Option.choices
DIR = "dir"  # a folder (completion offers folders)


class Option:
    """One option (or positional argument, when its first flag does not start with '-')."""

    __slots__ = ("flags", "help", "kind", "choices", "default", "metavar", "nargs", "group", "exclusive")

    def __init__(self, *flags: str, help: str = "", kind: str | None = None, choices: tuple[str, ...] = (),
                 default: object = None, metavar: str | None = None, nargs: str | None = None,
                 group: str | None = None, exclusive: str | None = None) -> None:
        self.flags = flags
        self.help = help
        # an option without a kind is a flag; a positional, one string
        self.kind = kind if kind is not None else (FLAG if flags[0].startswith("-") else TEXT)
        self.choices = choices
        self.default = default
        self.metavar = metavar
        self.nargs = nargs  # argparse's nargs for a positional ("?", "*") or None
        self.group = group  # the title of the help group it is listed under ("with --history")
        self.exclusive = exclusive  # options sharing this name are mutually exclusive

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    @property
    def takes_value(self) -> bool:
        return self.kind != FLAG


class Command:
    """One subcommand: its name, one-line help, where it is served, its options, what it names."""

    __slots__ = ("name", "help", "served", "options", "takes_plan", "takes_achievement", "actions")

    def __init__(self, name: str, help: str, options: tuple[Option, ...] = (), *,
                 takes_plan: bool = False, takes_achievement: bool = False,
                 actions: tuple[str, ...] = ()) -> None:
        self.name = name
        self.help = help
        self.served = SERVED[name]
        self.options = options
        self.takes_plan = takes_plan  # its first positional may be @PLAN (completion offers plan names)
        self.takes_achievement = takes_achievement  # and then an achievement number
        self.actions = actions  # `daemon start|stop|...`: the choices of its first positional


def _table() -> tuple[Command, ...]:
    """Every command and its options, built on first use (the parser, help, completion: never the thin
    client, which needs only SERVED)."""
    _TRUST_PLAN = Option("--trust-plan", help="follow the plan's handoff when it disagrees")
    _JSON = Option("--json", help="print JSON")
    table = (
        Command("generate", "print the prompt for the next step (or for one achievement)", (
            Option("target", nargs="*", metavar="@PLAN|PATH [ACHIEVEMENT]",
                   help="the plan (@NAME or path to its PLAN file) and optionally an achievement number"),
            Option("--next", help="the next step (the default without an achievement)"),
            Option("--json", help="print a JSON object"),
            Option("--inline", help="the prompt `run` sends: the content of every file it names, inlined"),
            _TRUST_PLAN,
        ), takes_plan=True, takes_achievement=True),
        Command("status", "every plan's progress, or every achievement of one plan", (
            Option("plan", nargs="?", metavar="@PLAN|PATH"),
            _JSON,
            _TRUST_PLAN,
            Option("--explain", help="with @PLAN: say, for each achievement, which file or mark decided its state"),
        ), takes_plan=True),
        Command("run", "send the prompt for the next step (or for one achievement) to the model", (
            Option("target", nargs="*", metavar="@PLAN|PATH [ACHIEVEMENT]"),
            Option("--next", help="the next step (the default without an achievement)"),
            Option("--parallel", help="run every achievement ready at the current dependency level, concurrently"),
            Option("--concurrency", kind=INT, help="at most this many calls at once (--parallel)"),
            Option("--write", help="save each answer to the file its state asks for"),
            Option("--force", help="with --write: overwrite an existing file"),
            Option("--no-cache", help="do not read the response cache (the answer replaces the cached one)"),
            Option("--dry-run", help="print the exact request (files inlined, tokens, cost) and send nothing"),
            Option("--blocked-ok", help="send an achievement even while its dependencies are not complete"),
            Option("-m", "--model", kind=TEXT, metavar="NAME", help="the model of [models.NAME] instead of [llm]"),
            Option("--json", help="JSON lines: one object per achievement, then a summary object"),
            _TRUST_PLAN,
        ), takes_plan=True, takes_achievement=True),
        Command("lsp", "the language server over stdio, relayed to the workspace's daemon", (
            Option("--standalone", help="run everything in this process"),
        )),
        Command("mcp", "an MCP server over stdio for coding agents: plans, next steps and their prompts (read only)"),
        Command("stats", "the daemon's counters: cache, requests, latency, watcher, memory", (
            Option("--json", help="print JSON", exclusive="format"),
            Option("--prometheus", help="print the Prometheus text exposition format", exclusive="format"),
            Option("--history", help="the model-call history instead (by plan, day, outcome and model), read without a daemon"),
            Option("--all", help="every workspace's calls (default: this workspace's)", group="with --history"),
            Option("--plan", kind=TEXT, metavar="@PLAN", help="only this plan's calls", group="with --history"),
            Option("--model", kind=TEXT, help="only this model's calls", group="with --history"),
            Option("--since", kind=TEXT, metavar="YYYY-MM-DD", help="only calls from this date (local time) on",
                   group="with --history"),
            Option("--days", kind=INT, default=30, metavar="N", help="days shown per day (default 30)",
                   group="with --history"),
            Option("--format", kind=CHOICE, choices=("text", "csv", "markdown", "json"),
                   help="text (default, with per-day charts), csv, markdown or json (= --json)", group="with --history"),
            Option("--answer", kind=INT, metavar="ID",
                   help="print again the answer `run --write` could not write (its id is in the run's last line)",
                   group="with --history"),
        )),
        Command("config", "the settings in force and where each comes from (environment, workspace, user, default)", (
                    Option("--json", help="print JSON"),
                    Option("--all", help="list every setting, defaults too"),
                )),
        Command("trust", "allow the workspace's settings that send data, read outside it or spend money", (
            Option("--show", help="list what it would allow, and whether it is allowed now", exclusive="trust"),
            Option("--revoke", help="ignore those settings again", exclusive="trust"),
        )),
        Command("doctor", "check the installation: perfd, workspace, settings, daemon, watcher, model server, Redis, editor", (
            Option("--json", help="print JSON"),
        )),
        Command("init", "write a commented perfd.toml with every setting and its default", (
            Option("--force", help="replace an existing perfd.toml"),
            Option("--stdout", help="print it instead of writing the file"),
        )),
        Command("new", "start a plan from a template: its PLAN file, its folders, a first achievement", (
            Option("name", metavar="NAME"),
            Option("--title", kind=TEXT, help="the plan's title (default: from its name)"),
        )),
        Command("completion", "print a shell completion script (bash, zsh or fish)", (
            Option("shell", kind=CHOICE, choices=("bash", "zsh", "fish")),
        )),
        Command("schema", "write the protocol's JSON Schemas into schemas/", (
            Option("--out", kind=TEXT, metavar="DIR", help="the folder (default: the repository's schemas/)"),
            Option("--check", help="only report schemas that are out of date (exit 1)"),
        )),
        Command("daemon", "run the daemon here, or manage it: start, stop, status, restart, logs", (
            Option("action", kind=CHOICE, nargs="?", choices=("run", "start", "stop", "status", "restart", "logs")),
            Option("-n", "--lines", kind=INT, default=50, help="log lines to show (logs)"),
            Option("--json", help="status as one JSON object (status)"),
        ), actions=("run", "start", "stop", "status", "restart", "logs")),
    )
    if tuple(c.name for c in table) != tuple(SERVED):
        raise AssertionError("command_registry: SERVED and the table name different commands")
    return table


NAMES = tuple(SERVED)
# Served in the caller's process only (the thin client never forwards them).
LOCAL_COMMANDS = frozenset(name for name, where in SERVED.items() if where == LOCAL)
# What the daemon answers through perfd.app.commands.
DAEMON_COMMANDS = frozenset(name for name, where in SERVED.items() if where == DAEMON)
_built: list[tuple[Command, ...]] = []


def commands() -> tuple[Command, ...]:
    """Every command, in the order help lists them, with its options (built once, on first use)."""
    if not _built:
        _built.append(_table())
    return _built[0]


def command(name: str) -> Command:
    return next(c for c in commands() if c.name == name)


def global_options() -> tuple[Option, ...]:
    """Options every command takes, before or after its name: the thin client honours --root anywhere on
    the line (perfd.cli.client.read_line), and the parser does too."""
    return (Option("--root", kind=DIR, metavar="DIR", help="the workspace root (default: walk up from the current folder)"),
            Option("--no-daemon", help="work in-process, without the daemon"))


def top_options() -> tuple[Option, ...]:
    """Options of `perfd` alone."""
    return (Option("--version", help="print the version"),)
