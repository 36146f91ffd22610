"""How loose perfd's seams are, counted from the source: `Any` and `type: ignore`.

    python tests/code_counts.py [--json] [PACKAGE_DIR]     (default: daemon/perfd)

- `Any`: every NAME token `Any` in the package's code (tokenize: not in
  comments or strings), except in import statements (`from typing import Any`
  is not a use); and each use of a module-level type alias whose definition
  mentions `Any` (`JSON = dict[str, Any]`, `X: TypeAlias = ...`,
  `type X = ...`), in its module and wherever it is imported, since every such
  use is an `Any` the reader does not see. An alias of such an alias is one
  too. The `Any` inside the alias's definition counts once, as any other.
- `type: ignore`: comments saying so (one per comment).

Goals (issue 26): Any at most 90, type: ignore at most 8; the test
tests/unit/test_code_counts.py keeps them. This script only prints, and exits 0.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import sys
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

ANY_GOAL = 90
TYPE_IGNORE_GOAL = 8

_TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore\b")  # also after another comment: `# noqa  # type: ignore`
# The forms a type alias's value takes: a name, a dotted name, a subscript, a union, a string.
_TYPE_FORMS = (ast.Name, ast.Attribute, ast.Subscript, ast.BinOp, ast.Constant)


@dataclass(frozen=True)
class FileCounts:
    path: str  # relative to the package's parent: perfd/wire/protocol.py
    any_names: int  # NAME tokens `Any` outside import statements
    alias_uses: int  # uses of an alias whose definition mentions Any
    type_ignores: int

    @property
    def any(self) -> int:
        return self.any_names + self.alias_uses


def _import_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def token_lines(source: str, tree: ast.Module | None = None) -> tuple[list[int], list[int]]:
    """The lines of each NAME token `Any` outside imports, and of each `type: ignore` comment, in one module."""
    skip = _import_lines(tree if tree is not None else ast.parse(source))
    any_names: list[int] = []
    ignores: list[int] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string == "Any" and tok.start[0] not in skip:
            any_names.append(tok.start[0])
        elif tok.type == tokenize.COMMENT and _TYPE_IGNORE.search(tok.string):
            ignores.append(tok.start[0])
    return any_names, ignores


def count_tokens(source: str, tree: ast.Module | None = None) -> tuple[int, int]:
    """(NAME tokens `Any` outside imports, `type: ignore` comments) of one module's source."""
    any_names, ignores = token_lines(source, tree)
    return len(any_names), len(ignores)


def module_name(path: str) -> str:
    """perfd/wire/protocol.py -> perfd.wire.protocol; perfd/llm/__init__.py -> perfd.llm."""
    parts = path[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _mentions(node: ast.AST, names: set[str]) -> bool:
    """Does a type expression name `Any` (bare or dotted) or one of `names`?"""
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and (n.id == "Any" or n.id in names):
            return True
        if isinstance(n, ast.Attribute) and n.attr == "Any":
            return True
    return False


def _alias_definitions(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Module-level type aliases: (name, value) for `X = <type>`, `X: TypeAlias = <type>` and `type X = <type>`."""
    out: list[tuple[str, ast.AST]] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` and the like
            todo.extend([*node.body, *node.orelse])
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, _TYPE_FORMS) and not isinstance(node.value, ast.Constant):
                out.append((node.targets[0].id, node.value))
        elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None
              and "TypeAlias" in ast.unparse(node.annotation)):
            out.append((node.target.id, node.value))
        elif sys.version_info >= (3, 12) and isinstance(node, ast.TypeAlias):
            out.append((node.name.id, node.value))
    return out


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, str, str]]:
    """(local name, module, name in that module) for each `from M import name [as local]`."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[str, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                source = ".".join(base) + (f".{node.module}" if node.module else "")
            else:
                source = node.module or ""
            out.extend((a.asname or a.name, source, a.name) for a in node.names if a.name != "*")
    return out


def any_aliases(trees: Mapping[str, ast.Module], packages: set[str]) -> dict[str, set[str]]:
    """For each module, the local names that are aliases mentioning Any (defined there or imported)."""
    local: dict[str, set[str]] = {m: set() for m in trees}
    defs = {m: _alias_definitions(t) for m, t in trees.items()}
    imports = {m: _imported_names(t, m, m in packages) for m, t in trees.items()}
    changed = True
    while changed:  # an alias of an alias, an alias imported from a module that imports it: to a fixed point
        changed = False
        for m in trees:
            for name, value in defs[m]:
                if name not in local[m] and _mentions(value, local[m]):
                    local[m].add(name)
                    changed = True
            for as_name, source, name in imports[m]:
                if as_name not in local[m] and name in local.get(source, ()):
                    local[m].add(as_name)
                    changed = True
    return local


def _alias_uses(tree: ast.Module, aliases: set[str]) -> int:
    """Loads of an alias's name (its definition is a store, and an import is neither)."""
    return sum(1 for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in aliases)


def count_sources(sources: Mapping[str, str]) -> list[FileCounts]:
    """Counts for a package given as {path relative to its parent: source}, e.g. {"pkg/a.py": "..."}."""
    trees = {module_name(p): ast.parse(s, filename=p) for p, s in sources.items()}
    packages = {module_name(p) for p in sources if p.endswith("/__init__.py")}
    aliases = any_aliases(trees, packages)
    out = []
    for path, source in sorted(sources.items()):
        m = module_name(path)
        any_names, ignores = count_tokens(source, trees[m])
        out.append(FileCounts(path, any_names, _alias_uses(trees[m], aliases[m]), ignores))
    return out


def read_package(package_dir: Path) -> dict[str, str]:
    root = package_dir.resolve().parent
    return {str(f.relative_to(root)): f.read_text(encoding="utf-8")
            for f in sorted(package_dir.resolve().rglob("*.py")) if "__pycache__" not in f.parts}


def directory(path: str) -> str:
    """perfd/wire/protocol.py -> perfd/wire/; perfd/config.py -> perfd/ (the top-level modules)."""
    parts = path.split("/")
    return "/".join(parts[:2]) + "/" if len(parts) > 2 else parts[0] + "/"


@dataclass(frozen=True)
class Totals:
    any: int
    any_names: int
    alias_uses: int
    type_ignores: int


def totals(counts: Iterable[FileCounts]) -> Totals:
    cs = list(counts)
    return Totals(sum(c.any for c in cs), sum(c.any_names for c in cs), sum(c.alias_uses for c in cs),
                  sum(c.type_ignores for c in cs))


def by_directory(counts: Iterable[FileCounts]) -> dict[str, Totals]:
    groups: dict[str, list[FileCounts]] = {}
    for c in counts:
        groups.setdefault(directory(c.path), []).append(c)
    return {d: totals(cs) for d, cs in sorted(groups.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("package_dir", nargs="?", type=Path,
                    default=Path(__file__).resolve().parent.parent / "daemon" / "perfd")
    ap.add_argument("--json", action="store_true", help="one JSON object: totals, goals, per directory, per file")
    args = ap.parse_args(argv)
    counts = count_sources(read_package(args.package_dir))
    total, dirs = totals(counts), by_directory(counts)
    if args.json:
        print(json.dumps({
            "total": asdict(total),
            "goals": {"any": ANY_GOAL, "type_ignores": TYPE_IGNORE_GOAL},
            "directories": {d: asdict(t) for d, t in dirs.items()},
            "files": {c.path: {**asdict(c), "any": c.any} for c in counts if c.any or c.type_ignores},
        }, indent=2))
        return 0
    print("Any = NAME tokens outside imports + uses of an alias whose definition mentions Any")
    print(f"{'':24} {'Any':>5} {'names':>7} {'alias uses':>13} {'type: ignore':>13}")
    for d, t in dirs.items():
        print(f"{d:24} {t.any:>5} {t.any_names:>7} {t.alias_uses:>13} {t.type_ignores:>13}")
    print(f"{'total':24} {total.any:>5} {total.any_names:>7} {total.alias_uses:>13} {total.type_ignores:>13}")
    print(f"{'goal (issue 26)':24} {'<=' + str(ANY_GOAL):>5} {'':>7} {'':>13} {'<=' + str(TYPE_IGNORE_GOAL):>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
