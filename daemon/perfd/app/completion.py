"""`perfd completion bash|zsh|fish`: a completion script built from the command registry (never out of date).

Completes the subcommands, each one's options, and the fixed choices
(`daemon start|stop|...`, `--format csv|...`, `completion bash|zsh|fish`);
values such as paths fall back to the shell's file completion. After a command
that takes a plan (Command.takes_plan) it offers the workspace's `@PLAN` names,
and after a plan, for a command that takes an achievement, its achievement
numbers: the scripts ask `perfd __complete plans|achievements @PLAN [--root DIR]`
(perfd.cli.client.complete), which asks the running daemon and never starts one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

# The registry (and json) are imported where the scripts are built: `perfd __complete` imports this module
# for shell_words alone, on every <TAB>.
if TYPE_CHECKING:
    from perfd import command_registry as registry

Spec = dict[str, tuple[list[str], dict[str, list[str]], list[str]]]


def _of(opts: Iterable[registry.Option]) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(options, {option: choices}, positional choices) of one command's options, --help included."""
    options: list[str] = ["--help"]
    choices: dict[str, list[str]] = {}
    positional: list[str] = []
    for opt in opts:
        if opt.positional:
            positional += opt.choices
            continue
        long = [f for f in opt.flags if f.startswith("--")]
        options += long or opt.flags
        if opt.choices:
            for f in opt.flags:
                choices[f] = list(opt.choices)
    return sorted(set(options)), choices, positional


def _spec() -> Spec:
    """{subcommand: (options, {option: choices}, positional choices)}; "" is the top level."""
    from perfd import command_registry as registry

    spec = {"": _of((*registry.top_options(), *registry.global_options()))}
    for cmd in registry.commands():
        spec[cmd.name] = _of((*cmd.options, *registry.global_options()))
    return spec


def _commands(spec: Spec) -> list[str]:
    return [c for c in spec if c]


def _names(what: str) -> tuple[str, ...]:
    """The commands that take a plan ("plan") or an achievement after it ("achievement")."""
    from perfd import command_registry as registry

    return tuple(c.name for c in registry.commands()
                 if (c.takes_plan if what == "plan" else c.takes_achievement))


def completion_words(kind: str, status_json: str) -> list[str]:
    """`@PLAN` names ("plans", from `perfd status --json`) or achievement numbers ("achievements", from
    `perfd status --json @PLAN`); a name a shell could not take as one word (white space, control
    characters) is left out."""
    import json

    try:
        got = json.loads(status_json)
    except ValueError:
        return []
    if not isinstance(got, dict):
        return []
    if kind == "plans":
        words = [str(p.get("plan", "")) for p in got.get("plans", []) if isinstance(p, dict)]
    else:
        words = [str(a.get("number", "")) for a in got.get("achievements", []) if isinstance(a, dict)]
    return shell_words(words, plans=kind == "plans")


def shell_words(words: list[str], *, plans: bool) -> list[str]:
    """`words` as completion offers them (plan names as `@NAME`), but those a shell could not take as one
    word (empty, white space, control characters)."""
    return [("@" + w if plans else w) for w in words
            if w.strip("@") and w.isprintable() and not any(c.isspace() for c in w)]


def bash(spec: Spec) -> str:
    cases = []
    for name, (options, choices, positional) in spec.items():
        if not name:
            continue
        value_cases = "".join(f'            {opt}) COMPREPLY=($(compgen -W "{" ".join(vals)}" -- "$cur")); return;;\n'
                              for opt, vals in choices.items())
        words = " ".join(options + positional)
        plans = ""
        if name in _names("plan"):
            # a plan's achievements once it is named (where the command takes one), else the plans
            ach = (f'                [[ -n $plan ]] && {{ COMPREPLY=($(compgen -W "$(_perfd_words achievements "$plan")" '
                   f'-- "$cur")); return; }}\n') if name in _names("achievement") else ""
            plans = ("            if [[ $cur != -* ]]; then\n                local plan=\"\" w\n"
                     "                for w in \"${COMP_WORDS[@]:1:COMP_CWORD-1}\"; do [[ $w == @* ]] && plan=$w; done\n"
                     f"{ach}"
                     "                if [[ -z $plan ]]; then\n"
                     "                    COMPREPLY+=($(compgen -W \"$(_perfd_words plans)\" -- \"$cur\"))\n"
                     "                    [[ $cur == @* ]] && return\n                fi\n            fi\n")
        cases.append(f"        {name})\n            case \"$prev\" in\n{value_cases}"
                     f"            --root) COMPREPLY=($(compgen -d -- \"$cur\")); return;;\n            esac\n"
                     f"            COMPREPLY=()\n{plans}"
                     f"            COMPREPLY+=($(compgen -W \"{words}\" -- \"$cur\"))\n"
                     f"            [[ $cur != -* ]] && COMPREPLY+=($(compgen -f -- \"$cur\"))\n            ;;\n")
    top = " ".join(_commands(spec) + spec[""][0])
    return f"""# perfd completion for bash: source it, or save it as
# ~/.local/share/bash-completion/completions/perfd
_perfd_words() {{
    local root="" i
    for ((i = 1; i < COMP_CWORD; i++)); do [[ ${{COMP_WORDS[i]}} == --root ]] && root=${{COMP_WORDS[i+1]}}; done
    perfd __complete "$@" ${{root:+--root "$root"}} 2>/dev/null
}}
_perfd() {{
    local cur prev cmd i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    cmd=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            --root) ((i++));;
            -*) ;;
            *) cmd="${{COMP_WORDS[i]}}"; break;;
        esac
    done
    case "$cmd" in
        "")
            if [[ $prev == --root ]]; then COMPREPLY=($(compgen -d -- "$cur")); return; fi
            COMPREPLY=($(compgen -W "{top}" -- "$cur"))
            ;;
{"".join(cases)}    esac
}}
complete -F _perfd perfd
"""


def zsh(spec: Spec) -> str:
    cases = []
    for name, (options, choices, positional) in spec.items():
        if not name:
            continue
        words = " ".join(options + positional)
        value_cases = "".join(f"        {opt}) compadd -- {' '.join(vals)}; return;;\n" for opt, vals in choices.items())
        plans = ""
        if name in _names("plan"):
            ach = ('        [[ -n $plan ]] && { found=(${(f)"$(_perfd_words achievements $plan)"}); '
                   'compadd -- $found; return; }\n') if name in _names("achievement") else ""
            plans = ("      if [[ $PREFIX != -* ]]; then\n        local plan=\"\" w; local -a found\n"
                     "        for w in $words[2,CURRENT-1]; do [[ $w == @* ]] && plan=$w; done\n"
                     f"{ach}"
                     "        if [[ -z $plan ]]; then\n"
                     "          found=(${(f)\"$(_perfd_words plans)\"}); compadd -- $found\n"
                     "          [[ $PREFIX == @* ]] && return\n        fi\n      fi\n")
        cases.append(f"    {name})\n      case $words[CURRENT-1] in\n{value_cases}"
                     f"        --root) _files -/; return;;\n      esac\n{plans}"
                     f"      compadd -- {words}; _files\n      ;;\n")
    top = " ".join(_commands(spec) + spec[""][0])
    return f"""#compdef perfd
# perfd completion for zsh: save it as _perfd in a folder of your $fpath
_perfd_words() {{
  local root="" i
  for ((i = 2; i < CURRENT; i++)); do [[ $words[i] == --root ]] && root=$words[i+1]; done
  perfd __complete "$@" ${{root:+--root}} ${{root:+$root}} 2>/dev/null
}}
_perfd() {{
  local cmd="" i
  for ((i = 2; i < CURRENT; i++)); do
    case $words[i] in
      --root) ((i++));;
      -*) ;;
      *) cmd=$words[i]; break;;
    esac
  done
  case $cmd in
    "")
      if [[ $words[CURRENT-1] == --root ]]; then _files -/; return; fi
      compadd -- {top}
      ;;
{"".join(cases)}  esac
}}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _perfd "$@"; else compdef _perfd perfd; fi
"""


def fish(spec: Spec) -> str:
    cmds = _commands(spec)
    lines = ["# perfd completion for fish: save it as ~/.config/fish/completions/perfd.fish",
             "function __perfd_words",
             "    set -l tokens (commandline -opc)",
             "    set -l root",
             "    for i in (seq (count $tokens))",
             "        if test \"$tokens[$i]\" = --root; and test $i -lt (count $tokens)",
             "            set root --root $tokens[(math $i + 1)]",
             "        end",
             "    end",
             "    perfd __complete $argv $root 2>/dev/null",
             "end",
             "function __perfd_plan_given",
             "    for t in (commandline -opc)[2..-1]",
             "        if string match -q -- '@*' $t",
             "            echo $t",
             "            return 0",
             "        end",
             "    end",
             "    return 1",
             "end",
             "complete -c perfd -f"]
    none = f"not __fish_seen_subcommand_from {' '.join(cmds)}"
    lines.append(f"complete -c perfd -n '{none}' -a '{' '.join(cmds)}'")
    for opt in spec[""][0]:
        lines.append(f"complete -c perfd -n '{none}' -l {opt[2:]}" + (" -r -F" if opt == "--root" else ""))
    takes_plan, takes_achievement = " ".join(_names("plan")), " ".join(_names("achievement"))
    lines.append(f"complete -c perfd -n '__fish_seen_subcommand_from {takes_plan}; and not __perfd_plan_given >/dev/null'"
                 " -a '(__perfd_words plans)'")
    lines.append(f"complete -c perfd -n '__fish_seen_subcommand_from {takes_achievement}; and __perfd_plan_given >/dev/null'"
                 " -a '(__perfd_words achievements (__perfd_plan_given))'")
    for name, (options, choices, positional) in spec.items():
        if not name:
            continue
        cond = f"__fish_seen_subcommand_from {name}"
        if positional:
            lines.append(f"complete -c perfd -n '{cond}' -a '{' '.join(positional)}'")
        else:
            lines.append(f"complete -c perfd -n '{cond}' -F")
        for opt in options:
            if not opt.startswith("--"):
                continue
            extra = f" -x -a '{' '.join(choices[opt])}'" if opt in choices else (" -r -F" if opt == "--root" else "")
            lines.append(f"complete -c perfd -n '{cond}' -l {opt[2:]}{extra}")
    return "\n".join(lines) + "\n"


def script(shell: str) -> str:
    from perfd.engine.errors import UsageError

    spec = _spec()
    if shell == "bash":
        return bash(spec)
    if shell == "zsh":
        return zsh(spec)
    if shell == "fish":
        return fish(spec)
    raise UsageError(f"no completion for {shell!r}", hint="perfd completion bash|zsh|fish")
