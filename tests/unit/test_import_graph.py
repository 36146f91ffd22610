"""The package's import graph, read from the source, against the rules of direction.

ARCHITECTURE.md's rules: no import cycles (imports inside functions count,
type-checking-only imports do not); engine imports nothing of llm, app,
daemon, lsp, cli, wire; llm nothing of engine, app, daemon, lsp, cli; wire
nothing of daemon, cli, app, lsp; and no module imports another module's
private (`_name`) names.

The graph is built with `ast`, without importing anything:

- every `import` and `from ... import` in a module counts, wherever it is
  (module level, function, class, try/except), except inside the body of
  `if TYPE_CHECKING:`, `if typing.TYPE_CHECKING:` or `if False:` (the idiom of
  cli/client.py); those are kept, marked type-only, and the checks skip them;
- `import a.b.c` is an edge to a.b.c; an import of a package is an edge to its
  `__init__` (the module named like the package); `from pkg import name` is an
  edge to pkg.name when that is a submodule, else to pkg;
- parent packages that Python runs on the way (`a`, `a.b` for `import a.b.c`)
  are not edges: every module of a package would otherwise be on a loop with
  its `__init__`.
- Dynamic imports (`importlib.import_module(...)`, as llm/__init__.py's lazy
  names do) are not seen.

The builder is tested on small synthetic trees below, so that it is shown to
find what it claims to find; the last four tests read perfd and run the three checks on it.
"""

from __future__ import annotations

import ast
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import perfd

# layer -> the layers it must not import (ARCHITECTURE.md, "Rules of direction")
FORBIDDEN: dict[str, frozenset[str]] = {
    "engine": frozenset({"llm", "app", "daemon", "lsp", "cli", "wire"}),
    "llm": frozenset({"engine", "app", "daemon", "lsp", "cli"}),
    "wire": frozenset({"daemon", "cli", "app", "lsp"}),
}


# --- the graph builder ---------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    path: str  # the importing file, relative to the package's parent
    line: int
    type_only: bool = False

    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class PrivateUse:
    """`from X import _name` or `alias._name` where X / alias is another module of the package."""

    src: str
    module: str
    name: str
    path: str
    line: int
    how: str  # "from" or "attribute"
    type_only: bool = False

    def __str__(self) -> str:
        what = f"from {self.module} import {self.name}" if self.how == "from" else f"{self.module}.{self.name}"
        return f"{self.path}:{self.line}: {self.src} uses {what}"


@dataclass
class Graph:
    package: str
    modules: dict[str, Path] = field(default_factory=dict)  # module name -> file
    edges: list[Edge] = field(default_factory=list)
    private: list[PrivateUse] = field(default_factory=list)

    def runtime_edges(self) -> list[Edge]:
        return [e for e in self.edges if not e.type_only]

    def targets(self, src: str, *, include_type_only: bool = False) -> set[str]:
        return {e.dst for e in self.edges if e.src == src and (include_type_only or not e.type_only)}


def module_name(package_dir: Path, package: str, file: Path) -> str:
    rel = file.relative_to(package_dir).with_suffix("")
    parts = [package, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def build_graph(package_dir: Path, package: str | None = None) -> Graph:
    """Every module under `package_dir` (a package named `package`, default: the folder's name)."""
    package = package or package_dir.name
    g = Graph(package)
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                f = Path(dirpath) / fn
                g.modules[module_name(package_dir, package, f)] = f
    for name, file in g.modules.items():
        tree = ast.parse(file.read_bytes(), filename=str(file))
        rel = str(file.relative_to(package_dir.parent))
        _Visitor(g, name, file.name == "__init__.py", rel).run(tree)
    return g


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING`, `typing.TYPE_CHECKING` (any module alias), or `False`."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return isinstance(test, ast.Constant) and test.value is False


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base is not None else None
    return None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


class _Visitor(ast.NodeVisitor):
    """Records one module's edges and private uses.

    Names bound to modules of the package (`import perfd.x.m as m`, `from perfd.x
    import m`, `import perfd.x`) are tracked per function scope, with the module's
    own imports visible everywhere, so `m._name` can be told from an attribute of
    a local that happens to share a name.
    """

    def __init__(self, g: Graph, name: str, is_package: bool, rel: str) -> None:
        self.g, self.name, self.rel = g, name, rel
        self.pkg_of_module = name if is_package else name.rpartition(".")[0]
        self.type_only = 0
        self.scopes: list[dict[str, tuple[str, bool]]] = [{}]  # local name -> (module, bound type-only)
        self.collecting = False

    def run(self, tree: ast.Module) -> None:
        # First the module scope's bindings (a function may use a name imported below it), then everything.
        self.collecting = True
        self._collect(tree.body)
        self.collecting = False
        self.visit(tree)

    def _collect(self, body: Iterable[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.visit(node)
            elif isinstance(node, ast.If):
                tc = _is_type_checking(node.test)
                self.type_only += tc
                self._collect(node.body)
                self.type_only -= tc
                self._collect(node.orelse)
            elif isinstance(node, ast.Try):
                for part in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                    self._collect(part)

    # -- resolving ---------------------------------------------------------------------

    def _in_package(self, mod: str) -> bool:
        return mod == self.g.package or mod.startswith(self.g.package + ".")

    def _known(self, dotted: str) -> str | None:
        """The longest prefix of `dotted` that is a module of the package."""
        parts = dotted.split(".")
        while parts:
            cand = ".".join(parts)
            if cand in self.g.modules:
                return cand
            parts.pop()
        return None

    def _resolve_from(self, module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        parts = self.pkg_of_module.split(".")
        if level > 1:
            parts = parts[: len(parts) - (level - 1)]
        base = ".".join(parts)
        return f"{base}.{module}" if module else base

    def _edge(self, dst: str, node: ast.stmt) -> None:
        if dst != self.name and not self.collecting:
            self.g.edges.append(Edge(self.name, dst, self.rel, node.lineno, bool(self.type_only)))

    def _bind(self, local: str, module: str) -> None:
        self.scopes[-1][local] = (module, bool(self.type_only))

    def _private(self, module: str, name: str, node: ast.AST, how: str, type_only: bool) -> None:
        if module != self.name and not self.collecting:
            self.g.private.append(PrivateUse(self.name, module, name, self.rel, getattr(node, "lineno", 0), how,
                                             type_only or bool(self.type_only)))

    # -- visiting ----------------------------------------------------------------------

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        tc = _is_type_checking(node.test)
        self.type_only += tc
        for stmt in node.body:
            self.visit(stmt)
        self.type_only -= tc
        for stmt in node.orelse:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not self._in_package(alias.name):
                continue
            target = self._known(alias.name)
            if target is not None:
                self._edge(target, node)
            if alias.asname:
                if target == alias.name:
                    self._bind(alias.asname, target)
            else:
                first = alias.name.split(".")[0]
                self._bind(first, first)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._resolve_from(node.module, node.level)
        if not self._in_package(base):
            return
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if alias.name != "*" and sub in self.g.modules:
                self._edge(sub, node)
                self._bind(alias.asname or alias.name, sub)
                # A private submodule is private to its own package.
                if _is_private(alias.name) and self.pkg_of_module != base:
                    self._private(base, alias.name, node, "from", False)
                continue
            target = self._known(base)
            if target is not None:
                self._edge(target, node)
                if _is_private(alias.name):
                    self._private(target, alias.name, node, "from", False)

    def _scoped(self, node: ast.AST, params: Iterable[str]) -> None:
        scope = dict(self.scopes[-1])
        for p in params:
            scope.pop(p, None)  # a parameter shadows a module alias
        self.scopes.append(scope)
        self.generic_visit(node)
        self.scopes.pop()

    @staticmethod
    def _params(args: ast.arguments) -> Iterator[str]:
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if a is not None:
                yield a.arg

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(node, self._params(node.args))

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scoped(node, self._params(node.args))

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scoped(node, self._params(node.args))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = _dotted(node.value)
        if dotted is not None and _is_private(node.attr):
            first, _, rest = dotted.partition(".")
            bound = self.scopes[-1].get(first)
            if bound is not None:
                full = bound[0] + ("." + rest if rest else "")
                if full in self.g.modules:
                    self._private(full, node.attr, node, "attribute", bound[1])
        self.generic_visit(node)


# --- the checks ----------------------------------------------------------------------------


def _strongly_connected(nodes: Iterable[str], succ: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(succ.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(succ.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def _shortest_path(start: str, goal: str, succ: dict[str, set[str]], within: set[str]) -> list[str] | None:
    """start -> ... -> goal, fewest steps, staying inside `within` (breadth first, names in order)."""
    prev: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        v = queue.popleft()
        if v == goal:
            path = [v]
            while path[-1] != start:
                path.append(prev[path[-1]])
            return path[::-1]
        for w in sorted(succ.get(v, ())):
            if w in within and w not in seen:
                seen.add(w)
                prev[w] = v
                queue.append(w)
    return None


def find_cycles(g: Graph) -> list[list[str]]:
    """For every import that lies on a loop, the shortest loop through it (each loop once).

    So every edge to cut appears in the report, without listing every elementary
    cycle (their number grows fast with a tangle).
    """
    succ: dict[str, set[str]] = {}
    for e in g.runtime_edges():
        succ.setdefault(e.src, set()).add(e.dst)
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for comp in _strongly_connected(g.modules, succ):
        if len(comp) < 2:
            continue
        members = set(comp)
        for u in comp:
            for v in sorted(succ.get(u, set()) & members):
                back = _shortest_path(v, u, succ, members)
                assert back is not None  # same component
                ring = [u, *back[:-1]]
                i = ring.index(min(ring))
                key = tuple(ring[i:] + ring[:i])  # the same loop from another start is the same loop
                if key not in seen:
                    seen.add(key)
                    cycles.append([*key, key[0]])
    return cycles


def describe_cycle(g: Graph, cycle: list[str]) -> str:
    lines: dict[tuple[str, str], list[Edge]] = {}
    for e in g.runtime_edges():
        lines.setdefault((e.src, e.dst), []).append(e)

    def hop(a: str, b: str) -> str:
        es = lines[(a, b)]
        return es[0].path + ":" + ",".join(str(n) for n in sorted({e.line for e in es}))

    return " -> ".join(cycle) + "   (" + "; ".join(hop(a, b) for a, b in zip(cycle, cycle[1:])) + ")"


def layer(g: Graph, module: str) -> str | None:
    """`engine` for pkg.engine and pkg.engine.*; None for the shared leaves (pkg.paths, ...) and pkg itself."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != g.package:
        return None
    top = f"{g.package}.{parts[1]}"
    is_subpackage = top in g.modules and g.modules[top].name == "__init__.py"
    return parts[1] if is_subpackage else None


def direction_violations(g: Graph) -> list[Edge]:
    out = []
    for e in g.runtime_edges():
        src, dst = layer(g, e.src), layer(g, e.dst)
        if src in FORBIDDEN and dst in FORBIDDEN[src]:
            out.append(e)
    return out


def private_violations(g: Graph) -> list[PrivateUse]:
    return [p for p in g.private if not p.type_only]


def _dedupe_edges(edges: Iterable[Edge]) -> list[Edge]:
    seen: set[tuple[str, str, int]] = set()
    out = []
    for e in edges:
        if (e.src, e.dst, e.line) not in seen:
            seen.add((e.src, e.dst, e.line))
            out.append(e)
    return out


# --- self-tests on synthetic trees ------------------------------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Files relative to `root`/pkg; every folder gets an empty __init__.py unless given one."""
    pkg = root / "pkg"
    for rel, text in files.items():
        p = pkg / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for d in [pkg, *(p for p in pkg.rglob("*") if p.is_dir())]:
        if not (d / "__init__.py").exists():
            (d / "__init__.py").write_text("")
    return pkg


def test_builder_finds_a_cycle_and_prints_it_as_a_path(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "a.py": "import pkg.b\n",
        "b.py": "from pkg import c\n",
        "c.py": "from pkg.a import thing\n",
        "d.py": "import pkg.a\n",  # on no loop: points into it only
    })
    g = build_graph(pkg)
    assert find_cycles(g) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    assert describe_cycle(g, find_cycles(g)[0]) == (
        "pkg.a -> pkg.b -> pkg.c -> pkg.a   (pkg/a.py:1; pkg/b.py:1; pkg/c.py:1)")


def test_builder_reports_two_loops_through_one_module(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "hub.py": "import pkg.x\nimport pkg.y\n",
        "x.py": "import pkg.hub\n",
        "y.py": "import pkg.hub\n",
    })
    assert find_cycles(build_graph(pkg)) == [["pkg.hub", "pkg.x", "pkg.hub"], ["pkg.hub", "pkg.y", "pkg.hub"]]


def test_every_import_on_a_loop_is_in_the_report(tmp_path: Path) -> None:
    # a <-> b is the shortest loop through both modules; a -> c -> b -> a must still be shown (a -> c is on a loop).
    pkg = write_tree(tmp_path, {"a.py": "import pkg.b\nimport pkg.c\n", "b.py": "import pkg.a\n", "c.py": "import pkg.b\n"})
    assert find_cycles(build_graph(pkg)) == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.a", "pkg.c", "pkg.b", "pkg.a"]]


def test_an_import_inside_a_function_counts(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "a.py": "import pkg.b\n",
        "b.py": "def later():\n    from pkg.a import thing\n    return thing\n",
    })
    g = build_graph(pkg)
    assert g.targets("pkg.b") == {"pkg.a"}
    assert find_cycles(g) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "a.py": "import pkg.b\n",
        "b.py": ("from typing import TYPE_CHECKING\nimport typing\n"
                 "if TYPE_CHECKING:\n    from pkg.a import One\n"
                 "if typing.TYPE_CHECKING:\n    import pkg.a\n"
                 "if False:  # for type checkers only\n    from pkg import a\n"
                 "def f(x: 'One') -> None:\n    pass\n"),
        "c.py": ("from typing import TYPE_CHECKING\n"
                 "if TYPE_CHECKING:\n    from pkg.a import One\nelse:\n    from pkg.b import f\n"),
    })
    g = build_graph(pkg)
    assert g.targets("pkg.b") == set()
    assert g.targets("pkg.b", include_type_only=True) == {"pkg.a"}
    assert g.targets("pkg.c") == {"pkg.b"}  # the else branch runs
    assert find_cycles(g) == []


def test_relative_and_package_imports_resolve(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "top.py": "",
        "llm/__init__.py": "from .client import Client\n",
        "llm/client.py": "from . import stats\nfrom .errors import Oops\nfrom .. import top\n",
        "llm/stats.py": "",
        "llm/errors.py": "",
        "wire/protocol.py": "",
        "app/run.py": ("from ..wire import protocol as P\nfrom pkg.wire import protocol\n"
                       "import pkg.llm.stats\nimport pkg.llm\nfrom pkg import llm as L\nfrom ..llm import Client\n"),
    })
    g = build_graph(pkg)
    assert g.targets("pkg.llm") == {"pkg.llm.client"}
    assert g.targets("pkg.llm.client") == {"pkg.llm.stats", "pkg.llm.errors", "pkg.top"}
    # a package is its __init__; a name that is a submodule is the submodule
    assert g.targets("pkg.app.run") == {"pkg.wire.protocol", "pkg.llm.stats", "pkg.llm"}
    rel = [e for e in g.edges if e.src == "pkg.app.run" and e.line == 1]
    assert [(e.dst, e.where()) for e in rel] == [("pkg.wire.protocol", "pkg/app/run.py:1")]


def test_direction_rules_on_a_synthetic_tree(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "paths.py": "",
        "engine/state.py": "from pkg import paths\ndef f():\n    from pkg.llm import client\n",
        "engine/types.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.wire.ipc import X\n",
        "llm/client.py": "from pkg.engine import types\n",
        "wire/ipc.py": "import pkg.engine.types\nimport pkg.cli\n",
        "cli/main.py": "from pkg.app import run\n",
        "app/run.py": "from pkg.engine import state\nfrom pkg.llm import client\n",
    })
    g = build_graph(pkg)
    assert [(e.src, e.dst, e.line) for e in direction_violations(g)] == [
        ("pkg.engine.state", "pkg.llm.client", 3),
        ("pkg.llm.client", "pkg.engine.types", 1),
        ("pkg.wire.ipc", "pkg.cli", 2),
    ]
    assert layer(g, "pkg.paths") is None and layer(g, "pkg") is None and layer(g, "pkg.cli") == "cli"


def test_private_names_of_other_modules_are_found(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "__init__.py": "__version__ = '1'\n_secret = 1\n",
        "wire/__init__.py": "_shared = 2\n",
        "wire/ipc.py": "_encoder = None\ndef _helper(): pass\ndef public(): return _helper()\n",
        "wire/protocol.py": "from . import _shared\nfrom .ipc import _helper as h\n",
        "cli/client.py": ("from pkg import __version__, _secret\nfrom pkg.wire import ipc\nimport pkg.wire.ipc as I\n"
                          "import pkg.wire.ipc\n"
                          "def f(x):\n    return ipc._encoder, I._helper, pkg.wire.ipc._encoder, x._ok, ipc.__name__\n"
                          "def g(ipc):\n    return ipc._not_the_module\n"),
        "cli/relay.py": "def f():\n    from pkg.wire import ipc as w\n    return w._encoder\ndef g(w):\n    return w._x\n",
    })
    g = build_graph(pkg)
    assert sorted(str(p) for p in private_violations(g)) == sorted([
        "pkg/wire/protocol.py:1: pkg.wire.protocol uses from pkg.wire import _shared",
        "pkg/wire/protocol.py:2: pkg.wire.protocol uses from pkg.wire.ipc import _helper",
        "pkg/cli/client.py:1: pkg.cli.client uses from pkg import _secret",
        "pkg/cli/client.py:6: pkg.cli.client uses pkg.wire.ipc._encoder",
        "pkg/cli/client.py:6: pkg.cli.client uses pkg.wire.ipc._helper",
        "pkg/cli/client.py:6: pkg.cli.client uses pkg.wire.ipc._encoder",
        "pkg/cli/relay.py:3: pkg.cli.relay uses pkg.wire.ipc._encoder",
    ])


def test_a_clean_tree_passes_every_check(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "engine/state.py": "import os\nfrom . import text\n_mine = 1\nprint(_mine)\n",
        "engine/text.py": "def _own(): pass\n",
        "llm/client.py": "from pkg.llm import errors\n",
        "llm/errors.py": "",
        "app/run.py": "from pkg.engine import state\nfrom pkg.llm.client import *\n",
    })
    g = build_graph(pkg)
    assert len(g.runtime_edges()) == 4
    assert (find_cycles(g), direction_violations(g), private_violations(g)) == ([], [], [])


# --- the real package ---------------------------------------------------------------------------


PERFD_DIR = Path(perfd.__file__).resolve().parent


def perfd_graph() -> Graph:
    return build_graph(PERFD_DIR, "perfd")


def test_the_real_package_is_read() -> None:
    g = perfd_graph()
    assert {"perfd", "perfd.engine.engine", "perfd.lsp.features", "perfd.wire.ipc", "perfd.cli.client"} <= set(g.modules)
    assert "perfd.lsp.features" in g.targets("perfd.lsp.handlers")
    assert "perfd.engine.types" in g.targets("perfd.lsp.features")
    # cli/client.py's `if False:` import of _socket is outside the package; perfd.paths is not
    assert g.targets("perfd.cli.client") >= {"perfd", "perfd.paths"}


def test_no_import_cycles() -> None:
    g = perfd_graph()
    cycles = find_cycles(g)
    assert not cycles, f"{len(cycles)} import cycle(s) in perfd (imports inside functions count):\n" + "\n".join(
        "  " + describe_cycle(g, c) for c in cycles)


def test_imports_follow_the_rules_of_direction() -> None:
    g = perfd_graph()
    bad = _dedupe_edges(direction_violations(g))
    assert not bad, f"{len(bad)} import(s) against the rules of direction (ARCHITECTURE.md):\n" + "\n".join(
        f"  {e.where()}: {e.src} ({layer(g, e.src)}) imports {e.dst} ({layer(g, e.dst)})" for e in bad)


def test_no_module_uses_another_modules_private_names() -> None:
    g = perfd_graph()
    bad = private_violations(g)
    assert not bad, f"{len(bad)} use(s) of another module's private name:\n" + "\n".join(f"  {p}" for p in bad)
