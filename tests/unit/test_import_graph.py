"""The package's import graph, read from the source, against the rules of direction.

ARCHITECTURE.md's rules: no import cycles, counting imports inside functions,
imports under `TYPE_CHECKING` and imports by string (an import only the type
checker sees still ties two files together); engine imports nothing of llm,
app, daemon, lsp, cli, wire; llm nothing of engine, app, daemon, lsp, cli;
wire nothing of daemon, cli, app, lsp; no module uses another module's
private (`_name`) names, by import or by attribute; third-party internals
(pygls) are touched in one adapter module only.

The graph is built with `ast`, without importing anything:

- every `import` and `from ... import` in a module counts, wherever it is
  (module level, function, class, try/except, and the body of
  `if TYPE_CHECKING:`, `if typing.TYPE_CHECKING:` or `if False:`, the idiom of
  cli/client.py); the type-checking ones are marked type-only, which the
  report shows, and every check counts them;
- `import a.b.c` is an edge to a.b.c; an import of a package is an edge to its
  `__init__` (the module named like the package); `from pkg import name` is an
  edge to pkg.name when that is a submodule, else to pkg;
- parent packages that Python runs on the way (`a`, `a.b` for `import a.b.c`)
  are not edges: every module of a package would otherwise be on a loop with
  its `__init__`;
- imports by string are edges, marked so: `importlib.import_module("pkg.x")`,
  `import_module(".x", __name__)` (relative to `__name__`, `__package__` or a
  literal, as importlib resolves it), `__import__("pkg.x")`, and a call of an
  import helper (a function of the package that passes its first parameter to
  `import_module`/`__import__`, like daemon/codecache.py's `import_cached`).
  Any other call whose first argument is a string literal equal to a dotted
  module name counts too (`pkg.x`, not the bare `pkg`, which is also a word:
  a tool's name, a table's key), except `logging.getLogger`, whose names
  follow the modules' by convention. A computed name is resolved where it is an f-string or a sum
  over constants, local names assigned from them, and a module-level literal
  table (`TABLE.get(k)`, `TABLE[k]`, `for v in TABLE`), as llm/__init__.py's
  lazy names are; what cannot be resolved is listed as an unresolved dynamic
  import, which must be allowlisted with a reason.

Private names, three rules:

- by import or module attribute: `from X import _name`, `alias._name` where
  X / alias is another module of the package;
- by attribute reach-in: `x._name` where `x` is not `self` or `cls` and
  `_name` belongs to another module of the package (defined there at module
  level, as a class attribute or method, or as `self._name = ...` in a method)
  and is not defined in the module that uses it. A name defined in both is not
  flagged: the check cannot tell whose object `x` is;
- third-party internals: names of third-party modules (not the standard
  library) are not reached by a private module or name (`from watchfiles._x
  import`, `import pygls._x`, `from pygls import _x`, `alias._x` for a name
  imported from a third-party module), and pygls's known private members
  (`PYGLS_PRIVATES`) are neither defined nor used by attribute, except in the
  pygls adapter module (pygls and lsprotocol only there; watchfiles nowhere).

The builder is tested on small synthetic trees below, so that it is shown to
find what it claims to find; the last tests read perfd and run every check on it.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
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
    # the two transports: the daemon may relay to an LSP session (by name, at run time); lsp never imports the daemon
    "lsp": frozenset({"daemon", "cli"}),
    # the shared leaves below every layer
    "settings": frozenset({"engine", "llm", "app", "daemon", "lsp", "cli", "wire"}),
    "runtime": frozenset({"app", "daemon", "lsp", "cli"}),
}

# The one module that may touch pygls's (and lsprotocol's) internals, relative to the package.
ADAPTER = "lsp.pygls_adapter"
ADAPTER_MAY_TOUCH = frozenset({"pygls", "lsprotocol"})
# pygls's private members perfd is known to override or call.
PYGLS_PRIVATES = frozenset({"_send_data", "_handle_cancel_notification", "_shutdown"})
# Functions that take a module's name and import it.
IMPORT_FUNCTIONS = frozenset({"import_module", "__import__"})
# Calls whose first argument names a module by convention, without importing it.
NOT_IMPORTS = frozenset({"getLogger"})


# --- the graph builder ---------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    path: str  # the importing file, relative to the package's parent
    line: int
    type_only: bool = False
    by_string: bool = False

    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def kind(self) -> str:
        return " ".join(k for k, on in (("type-only", self.type_only), ("by string", self.by_string)) if on)


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
        return f"{self.path}:{self.line}: {self.src} uses {what}" + (" (type-only)" if self.type_only else "")


@dataclass(frozen=True)
class ReachIn:
    """`x._name` where `_name` belongs to other modules of the package, not to this one."""

    src: str
    name: str
    owners: tuple[str, ...]
    path: str
    line: int
    expr: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.src} reaches into {self.expr} ({self.name} is {', '.join(self.owners)}'s)"


@dataclass(frozen=True)
class Finding:
    """A third-party internal touched, or an import by string whose module cannot be worked out."""

    src: str
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.src} {self.what}"


@dataclass
class Graph:
    package: str
    modules: dict[str, Path] = field(default_factory=dict)  # module name -> file
    edges: list[Edge] = field(default_factory=list)
    private: list[PrivateUse] = field(default_factory=list)
    reach_ins: list[ReachIn] = field(default_factory=list)
    third_party: list[Finding] = field(default_factory=list)
    unresolved: list[Finding] = field(default_factory=list)  # dynamic imports
    defines: dict[str, set[str]] = field(default_factory=dict)  # private name -> modules defining it
    import_helpers: set[str] = field(default_factory=set)

    def runtime_edges(self) -> list[Edge]:
        return [e for e in self.edges if not e.type_only]

    def targets(self, src: str, *, include_type_only: bool = False) -> set[str]:
        return {e.dst for e in self.edges if e.src == src and (include_type_only or not e.type_only)}

    def adapter(self) -> str:
        return f"{self.package}.{ADAPTER}"


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
    trees = {name: ast.parse(file.read_bytes(), filename=str(file)) for name, file in g.modules.items()}
    for name, tree in trees.items():
        for private in private_names_defined(tree):
            g.defines.setdefault(private, set()).add(name)
    g.import_helpers = import_helpers(trees.values())
    for name, tree in trees.items():
        file = g.modules[name]
        rel = str(file.relative_to(package_dir.parent))
        _Visitor(g, name, file.name == "__init__.py", rel).run(tree)
    return g


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_STDLIB = frozenset(sys.stdlib_module_names)
_THIRD_PARTY = "<third-party>"  # the mark of a name bound by an import of a third-party module


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


def _callee(call: ast.Call) -> str | None:
    """The called name: `f` for `f(...)` and `a.b.f(...)`."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _names(target: ast.expr) -> Iterator[str]:
    """The plain names an assignment target binds."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for t in target.elts:
            yield from _names(t)
    elif isinstance(target, ast.Starred):
        yield from _names(target.value)


def _assigned(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return [node.target]
    return []


def _module_level(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run at module level (into if/try/with, not into defs)."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.For, ast.While)):
            yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.With):
            yield from _module_level(node.body)
        elif isinstance(node, ast.Try):
            for part in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from _module_level(part)


def private_names_defined(tree: ast.Module) -> set[str]:
    """The private names a module defines: module-level names, class attributes and methods, `self._x = ...`."""
    out: set[str] = set()

    def bind(node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        for t in _assigned(node):
            out.update(_names(t))

    for node in _module_level(tree.body):
        bind(node)
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for node in _module_level(cls.body):
            bind(node)
        for inner in ast.walk(cls):
            for t in _assigned(inner):
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in ("self", "cls"):
                    out.add(t.attr)
    return {n for n in out if _is_private(n)}


def _first_param(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    if params and params[0] in ("self", "cls"):
        params = params[1:]
    return params[0] if params else None


def import_helpers(trees: Iterable[ast.Module]) -> set[str]:
    """Functions that import the module named by their first parameter (to a fixed point: a helper's helper)."""
    fns = [fn for tree in trees for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))]
    found: set[str] = set()
    while True:
        more = set()
        for fn in fns:
            first = _first_param(fn)
            if fn.name in found or first is None:
                continue
            for call in ast.walk(fn):
                if (isinstance(call, ast.Call) and (_callee(call) in IMPORT_FUNCTIONS or _callee(call) in found)
                        and call.args and isinstance(call.args[0], ast.Name) and call.args[0].id == first):
                    more.add(fn.name)
        if not more:
            return found
        found |= more


def _own_nodes(fn: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, not those of functions defined inside it."""
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, _SCOPES):
            todo.extend(ast.iter_child_nodes(node))


def _literal_table(value: ast.expr) -> tuple[list[str], list[str]] | None:
    """(keys, values) of a literal dict of strings, or (items, items) of a tuple/list/set of strings."""
    def strs(nodes: list[ast.expr | None] | list[ast.expr]) -> list[str] | None:
        out = [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        return out if len(out) == len(nodes) else None

    if isinstance(value, ast.Dict):
        keys, values = strs(value.keys), strs(value.values)
        return (keys, values) if keys is not None and values is not None else None
    if isinstance(value, ast.Call) and _callee(value) in ("frozenset", "tuple", "set") and len(value.args) == 1:
        value = value.args[0]
    if isinstance(value, (ast.Tuple, ast.List, ast.Set)):
        items = strs(value.elts)
        return (items, items) if items is not None else None
    return None




class _Visitor(ast.NodeVisitor):
    """Records one module's edges, private uses and reach-ins.

    Names bound to modules of the package (`import perfd.x.m as m`, `from perfd.x
    import m`, `import perfd.x`) are tracked per function scope, with the module's
    own imports visible everywhere, so `m._name` can be told from an attribute of
    a local that happens to share a name. Names imported from third-party modules
    are tracked the same way, for the third-party rule.
    """

    def __init__(self, g: Graph, name: str, is_package: bool, rel: str) -> None:
        self.g, self.name, self.rel = g, name, rel
        self.pkg_of_module = name if is_package else name.rpartition(".")[0]
        self.type_only = 0
        self.scopes: list[dict[str, tuple[str, bool]]] = [{}]  # local name -> (module, bound type-only)
        self.functions: list[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda] = []
        self.collecting = False
        self.tables: dict[str, tuple[list[str], list[str]]] = {}  # module-level literal tables of strings
        # module-level name -> ("value", what is assigned to it) or ("each", what a for loop takes it from)
        self.module_values: dict[str, list[tuple[str, ast.expr]]] = {}
        self.is_adapter = name == g.adapter()

    def run(self, tree: ast.Module) -> None:
        for node in _module_level(tree.body):
            if isinstance(node, ast.For):
                for n in _names(node.target):
                    self.module_values.setdefault(n, []).append(("each", node.iter))
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) else None
            if value is None:
                continue
            for t in _assigned(node):
                for n in _names(t):
                    self.module_values.setdefault(n, []).append(("value", value))
                table = _literal_table(value)
                if table is not None and isinstance(t, ast.Name):
                    self.tables[t.id] = table
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

    def _third_party(self, mod: str) -> bool:
        top = mod.split(".")[0]
        return bool(top) and not self._in_package(mod) and top not in _STDLIB

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

    def _edge(self, dst: str, node: ast.stmt | ast.expr, *, by_string: bool = False) -> None:
        if dst != self.name and not self.collecting:
            self.g.edges.append(Edge(self.name, dst, self.rel, node.lineno, bool(self.type_only), by_string))

    def _bind(self, local: str, module: str) -> None:
        self.scopes[-1][local] = (module, bool(self.type_only))

    def _private(self, module: str, name: str, node: ast.AST, how: str, type_only: bool) -> None:
        if module != self.name and not self.collecting:
            self.g.private.append(PrivateUse(self.name, module, name, self.rel, getattr(node, "lineno", 0), how,
                                             type_only or bool(self.type_only)))

    def _finding(self, into: list[Finding], node: ast.AST, what: str) -> None:
        if not self.collecting:
            into.append(Finding(self.name, self.rel, getattr(node, "lineno", 0), what))

    def _third_party_private(self, node: ast.AST, module: str, what: str) -> None:
        if not (self.is_adapter and module.split(".")[0] in ADAPTER_MAY_TOUCH):
            self._finding(self.g.third_party, node, what)

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
                self.scopes[-1].pop(alias.asname or alias.name.split(".")[0], None)
                if self._third_party(alias.name):
                    if any(_is_private(p) for p in alias.name.split(".")):
                        self._third_party_private(node, alias.name, f"imports {alias.name}, a private module")
                    self._bind(alias.asname or alias.name.split(".")[0], _THIRD_PARTY + alias.name)
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
            if node.level == 0 and self._third_party(base):
                for alias in node.names:
                    if any(_is_private(p) for p in base.split(".")):
                        self._third_party_private(node, base, f"imports {alias.name} from {base}, a private module")
                    elif _is_private(alias.name):
                        self._third_party_private(node, base, f"imports {alias.name}, a private name of {base}")
                    if alias.name != "*":
                        self._bind(alias.asname or alias.name, _THIRD_PARTY + base)
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

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, params: Iterable[str]) -> None:
        scope = dict(self.scopes[-1])
        for p in params:
            scope.pop(p, None)  # a parameter shadows a module alias
        self.scopes.append(scope)
        self.functions.append(node)
        self.generic_visit(node)
        self.functions.pop()
        self.scopes.pop()

    @staticmethod
    def _params(args: ast.arguments) -> Iterator[str]:
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if a is not None:
                yield a.arg

    def _defines(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name in PYGLS_PRIVATES:
            self._third_party_private(node, "pygls", f"defines {node.name}, a private member of pygls")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._defines(node)
        self._scoped(node, self._params(node.args))

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._defines(node)
        self._scoped(node, self._params(node.args))

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scoped(node, self._params(node.args))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _is_private(node.attr) and not self.collecting:
            self._private_attribute(node)
        self.generic_visit(node)

    def _private_attribute(self, node: ast.Attribute) -> None:
        if node.attr in PYGLS_PRIVATES:
            self._third_party_private(node, "pygls", f"uses {ast.unparse(node)}, a private member of pygls")
            return
        dotted = _dotted(node.value)
        if dotted is not None:
            first, _, rest = dotted.partition(".")
            bound = self.scopes[-1].get(first)
            if bound is not None and bound[0].startswith(_THIRD_PARTY):
                module = bound[0][len(_THIRD_PARTY):]
                self._third_party_private(node, module, f"uses {ast.unparse(node)}, a private name of {module}")
                return
            if bound is not None:
                full = bound[0] + ("." + rest if rest else "")
                if full in self.g.modules:
                    self._private(full, node.attr, node, "attribute", bound[1])
                    return
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            return
        owners = self.g.defines.get(node.attr, set())
        if owners and self.name not in owners:
            self.g.reach_ins.append(ReachIn(self.name, node.attr, tuple(sorted(owners)), self.rel, node.lineno,
                                            ast.unparse(node)))

    # -- imports by string -------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        callee = _callee(node)
        if node.args and callee not in NOT_IMPORTS:
            first = node.args[0]
            if callee in IMPORT_FUNCTIONS or callee in self.g.import_helpers:
                self._dynamic_import(node, callee, first)
            elif (isinstance(first, ast.Constant) and isinstance(first.value, str) and "." in first.value
                    and first.value in self.g.modules):
                self._edge(first.value, node, by_string=True)  # the bare package name is a word too: tool.get("perfd")
        self.generic_visit(node)

    def _dynamic_import(self, node: ast.Call, callee: str | None, first: ast.expr) -> None:
        fn = self.functions[-1] if self.functions else None
        if (isinstance(first, ast.Name) and isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                and fn.name in self.g.import_helpers and _first_param(fn) == first.id):
            return  # a helper passing its parameter on: its callers' arguments are the edges
        names = self._strings(first)
        anchor: str | None = None
        if callee == "import_module":
            package = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "package"), None)
            if isinstance(package, ast.Name) and package.id == "__name__":
                anchor = self.name
            elif isinstance(package, ast.Name) and package.id == "__package__":
                anchor = self.pkg_of_module
            elif isinstance(package, ast.Constant) and isinstance(package.value, str):
                anchor = package.value
        if names is None:
            self._finding(self.g.unresolved, node, f"imports {ast.unparse(first)}, a name worked out at run time")
            return
        for name in sorted(names):
            if name.startswith("."):
                if anchor is None:
                    self._finding(self.g.unresolved, node, f"imports {name!r} relative to an unknown package")
                    continue
                level = len(name) - len(name.lstrip("."))
                base = anchor.rsplit(".", level - 1)[0]  # as importlib._resolve_name does
                name = f"{base}.{name[level:]}" if name[level:] else base
            if self._in_package(name):
                target = self._known(name)
                if target is not None:
                    self._edge(target, node, by_string=True)

    def _strings(self, expr: ast.expr, depth: int = 0) -> set[str] | None:
        """Every value `expr` can have, or None when it is not worked out from literals in this module."""
        if depth > 5:
            return None
        if isinstance(expr, ast.Constant):
            return {expr.value} if isinstance(expr.value, str) else None
        if isinstance(expr, ast.JoinedStr):
            acc = {""}
            for part in expr.values:
                if isinstance(part, ast.FormattedValue):
                    opts = self._strings(part.value, depth + 1) if part.format_spec is None else None
                else:
                    opts = self._strings(part, depth + 1)
                if opts is None:
                    return None
                acc = {a + o for a in acc for o in opts}
            return acc
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left, right = self._strings(expr.left, depth + 1), self._strings(expr.right, depth + 1)
            return None if left is None or right is None else {a + b for a in left for b in right}
        if isinstance(expr, ast.Name):
            return self._name_strings(expr.id, depth + 1)
        return None

    def _name_strings(self, name: str, depth: int) -> set[str] | None:
        """The values a name takes: the assignments in the innermost function, else at module level."""
        values: list[tuple[str, ast.expr]] = []
        fn = self.functions[-1] if self.functions else None
        if fn is not None:
            if name in self._params(fn.args):
                return None
            for node in _own_nodes(fn):
                if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                    if any(name in _names(t) for t in _assigned(node)):
                        values.append(("value", node.value))
                elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)) and name in _names(node.target):
                    values.append(("each", node.iter))
                elif isinstance(node, ast.NamedExpr) and node.target.id == name:
                    values.append(("value", node.value))
        if not values:
            values = self.module_values.get(name, [])
        if not values:
            return None
        out: set[str] = set()
        for how, value in values:
            got = self._table_strings(how, value)
            if got is None and how == "value":
                got = self._strings(value, depth)
            if got is None:
                return None
            out |= got
        return out

    def _table_strings(self, how: str, value: ast.expr) -> set[str] | None:
        """TABLE.get(k[, "default"]), TABLE[k] (its values); for v in TABLE / TABLE.values() / TABLE.keys()."""
        if how == "value":
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "get"
                    and isinstance(value.func.value, ast.Name) and value.func.value.id in self.tables):
                out = set(self.tables[value.func.value.id][1])
                if len(value.args) > 1:
                    default = self._strings(value.args[1])
                    if default is None and not (isinstance(value.args[1], ast.Constant) and value.args[1].value is None):
                        return None
                    out |= default or set()
                return out
            if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name) and value.value.id in self.tables:
                return set(self.tables[value.value.id][1])
            return None
        if isinstance(value, ast.Name) and value.id in self.tables:
            return set(self.tables[value.id][0])
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and not value.args
                and isinstance(value.func.value, ast.Name) and value.func.value.id in self.tables
                and value.func.attr in ("keys", "values")):
            return set(self.tables[value.func.value.id][0 if value.func.attr == "keys" else 1])
        return None


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
    for e in g.edges:  # type-only and by-string imports too
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
    """`a -> b -> a   (a's file:lines; b's file:lines)`, each line marked type-only or by string where it is."""
    lines: dict[tuple[str, str], list[Edge]] = {}
    for e in g.edges:
        lines.setdefault((e.src, e.dst), []).append(e)

    def hop(a: str, b: str) -> str:
        es = lines[(a, b)]
        kinds = {e.line: e.kind() for e in sorted(es, key=lambda e: e.line)}
        return es[0].path + ":" + ",".join(f"{n} {k}" if k else str(n) for n, k in kinds.items())

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
    for e in g.edges:  # an engine file importing daemon for the type checker only is still tied to it
        src, dst = layer(g, e.src), layer(g, e.dst)
        if src in FORBIDDEN and dst in FORBIDDEN[src]:
            out.append(e)
    return out


def private_violations(g: Graph) -> list[PrivateUse]:
    return list(g.private)  # type-only uses too


def reach_ins(g: Graph) -> list[ReachIn]:
    return list(g.reach_ins)


def third_party_violations(g: Graph) -> list[Finding]:
    return list(g.third_party)


def unresolved_imports(g: Graph, allowed: dict[tuple[str, str], str] | None = None) -> list[Finding]:
    """Dynamic imports not worked out, less those allowed as {(module, what): reason}."""
    return [f for f in g.unresolved if (f.src, f.what) not in (allowed or {})]


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


def test_type_checking_imports_count_and_are_marked(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "a.py": "import pkg.b\n",
        "b.py": ("from typing import TYPE_CHECKING\nimport typing\n"
                 "if TYPE_CHECKING:\n    from pkg.a import One\n"
                 "if typing.TYPE_CHECKING:\n    import pkg.a\n"
                 "if False:  # for type checkers only\n    from pkg import a\n"
                 "def f(x: 'One') -> None:\n    pass\n"),
        "c.py": ("from typing import TYPE_CHECKING\n"
                 "if TYPE_CHECKING:\n    from pkg.a import One\nelse:\n    from pkg.b import f\n"),
        "d.py": "if False:\n    import _socket\n    import json\n",  # outside the package: no edge
    })
    g = build_graph(pkg)
    assert g.targets("pkg.b") == set()
    assert g.targets("pkg.b", include_type_only=True) == {"pkg.a"}
    assert g.targets("pkg.c") == {"pkg.b"}  # the else branch runs
    assert g.targets("pkg.d", include_type_only=True) == set()
    # each of the three idioms counts, and the report says the loop is only seen by the type checker
    assert [(e.line, e.type_only) for e in g.edges if e.src == "pkg.b"] == [(4, True), (6, True), (8, True)]
    assert find_cycles(g) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert describe_cycle(g, find_cycles(g)[0]) == (
        "pkg.a -> pkg.b -> pkg.a   (pkg/a.py:1; pkg/b.py:4 type-only,6 type-only,8 type-only)")


def test_a_type_checking_import_inside_a_class_or_function_counts(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "a.py": "import pkg.b\n",
        "b.py": ("import typing as t\nclass K:\n    if t.TYPE_CHECKING:\n        from pkg.a import One\n"
                 "def f():\n    if t.TYPE_CHECKING:\n        from pkg import a\n"),
    })
    assert find_cycles(build_graph(pkg)) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_a_string_import_closes_a_loop(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "a.py": "import pkg.b\n",
        "b.py": "import importlib\ndef later():\n    return importlib.import_module('pkg.a').thing\n",
    })
    g = build_graph(pkg)
    assert [(e.dst, e.line, e.by_string) for e in g.edges if e.src == "pkg.b"] == [("pkg.a", 3, True)]
    assert find_cycles(g) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert describe_cycle(g, find_cycles(g)[0]) == "pkg.a -> pkg.b -> pkg.a   (pkg/a.py:1; pkg/b.py:3 by string)"
    assert g.unresolved == []


def test_every_kind_of_string_import_is_an_edge(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "x.py": "", "y.py": "", "z.py": "", "w.py": "",
        "sub/__init__.py": "", "sub/m.py": "", "sub/n.py": "",
        "loader.py": ("import importlib\n"
                      "def load(name, path=None):\n    return importlib.import_module(name)\n"
                      "def load_twice(what):\n    return load(what)\n"),
        "sub/user.py": ("from importlib import import_module\nimport logging\nfrom pkg.loader import load, load_twice\n"
                        "import_module('pkg.x')\n"  # 4
                        "__import__('pkg.y')\n"  # 5
                        "import_module('.m', __package__)\n"  # 6: pkg.sub.m
                        "import_module('..z', __package__)\n"  # 7: pkg.z
                        "import_module('.w', 'pkg')\n"  # 8: pkg.w
                        "load('pkg.sub.n')\n"  # 9: a helper
                        "load_twice('pkg.x')\n"  # 10: a helper's helper
                        "import_module('json')\n"  # 11: outside the package
                        "log = logging.getLogger('pkg.y')\n"  # 12: a logger's name, not an import
                        "print('pkg.w', 'pkg.z')\n"  # 13: any call whose first argument names a module
                        "'pkg'.startswith('pkg')\n"),  # 14: the bare package name is a word too
    })
    g = build_graph(pkg)
    got = [(e.line, e.dst) for e in g.edges if e.src == "pkg.sub.user" and e.by_string]
    assert got == [(4, "pkg.x"), (5, "pkg.y"), (6, "pkg.sub.m"), (7, "pkg.z"), (8, "pkg.w"), (9, "pkg.sub.n"),
                   (10, "pkg.x"), (13, "pkg.w")]
    assert g.import_helpers == {"load", "load_twice"}
    assert g.unresolved == []  # the helpers pass their parameter on: their callers are read instead


def test_a_lazy_table_is_resolved_and_a_computed_name_is_reported(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "lazy/__init__.py": ("import importlib\n"
                             "_WHERE = {'Client': 'client', 'Stream': 'stream'}\n"
                             "_PLUGINS = ('pkg.plug',)\n"
                             "def __getattr__(name):\n"
                             "    where = _WHERE.get(name)\n"
                             "    return getattr(importlib.import_module(f'.{where}', __name__), name)\n"  # 6
                             "def plugins():\n"
                             "    return [importlib.import_module(p) for p in _PLUGINS]\n"  # 8
                             "def each():\n"
                             "    for m in _WHERE.values():\n"
                             "        importlib.import_module('pkg.lazy.' + m)\n"  # 11
                             "def from_config(cfg):\n"
                             "    return importlib.import_module(cfg.module)\n"  # 13
                             "def from_env(env):\n"
                             "    name = env['MOD']\n"
                             "    return importlib.import_module(f'pkg.{name}')\n"),  # 16
        "lazy/client.py": "", "lazy/stream.py": "", "plug.py": "",
    })
    g = build_graph(pkg)
    got = [(e.line, e.dst) for e in g.edges if e.src == "pkg.lazy"]
    assert got == [(6, "pkg.lazy.client"), (6, "pkg.lazy.stream"), (8, "pkg.plug"),
                   (11, "pkg.lazy.client"), (11, "pkg.lazy.stream")]
    assert [str(f) for f in unresolved_imports(g)] == [
        "pkg/lazy/__init__.py:13: pkg.lazy imports cfg.module, a name worked out at run time",
        "pkg/lazy/__init__.py:16: pkg.lazy imports f'pkg.{name}', a name worked out at run time",
    ]
    allowed = {("pkg.lazy", "imports cfg.module, a name worked out at run time"): "plugins named by the user"}
    assert len(unresolved_imports(g, allowed)) == 1


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
        ("pkg.engine.types", "pkg.wire.ipc", 3),  # for the type checker only, and still a tie
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


def test_private_attribute_reach_ins_are_found(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "llm/client.py": ("_DEFAULT = 1\n"
                          "def _helper(): pass\n"
                          "class Client:\n"
                          "    _kind = 'x'\n"
                          "    _limit: int = 3\n"
                          "    def __init__(self):\n"
                          "        self._record = []\n"
                          "        self._attempts: int = 0\n"
                          "        self._lock = None\n"
                          "    def _finish(self): pass\n"
                          "    @classmethod\n"
                          "    def make(cls):\n"
                          "        cls._made = True\n"),
        "llm/stream.py": ("class Stream:\n"
                          "    def __init__(self, client):\n"
                          "        self._client = client\n"
                          "        self._lock = None\n"  # also its own: not flagged anywhere here
                          "    def run(self, c):\n"
                          "        self._client._record.append(1)\n"  # 6: a self._x of another module's class
                          "        c._finish()\n"  # 7: a method
                          "        c._attempts += 1\n"  # 8: an annotated self._x, written
                          "        n = c._limit + c._kind.count('x')\n"  # 9: two class attributes
                          "        c._made\n"  # 10: set through cls
                          "        c._lock, self._lock, self._record\n"  # 11: _lock is defined here too; self._x never
                          "        c._replace(), c._asdict()\n"  # 12: defined nowhere in the package
                          "        other._DEFAULT, other._helper()\n"  # 13: module-level names, reached by attribute
                          "    @classmethod\n"
                          "    def again(cls):\n"
                          "        return cls._record\n"),  # 16: cls._x never
    })
    g = build_graph(pkg)
    assert [str(r) for r in reach_ins(g)] == [
        "pkg/llm/stream.py:6: pkg.llm.stream reaches into self._client._record (_record is pkg.llm.client's)",
        "pkg/llm/stream.py:7: pkg.llm.stream reaches into c._finish (_finish is pkg.llm.client's)",
        "pkg/llm/stream.py:8: pkg.llm.stream reaches into c._attempts (_attempts is pkg.llm.client's)",
        "pkg/llm/stream.py:9: pkg.llm.stream reaches into c._limit (_limit is pkg.llm.client's)",
        "pkg/llm/stream.py:9: pkg.llm.stream reaches into c._kind (_kind is pkg.llm.client's)",
        "pkg/llm/stream.py:10: pkg.llm.stream reaches into c._made (_made is pkg.llm.client's)",
        "pkg/llm/stream.py:13: pkg.llm.stream reaches into other._DEFAULT (_DEFAULT is pkg.llm.client's)",
        "pkg/llm/stream.py:13: pkg.llm.stream reaches into other._helper (_helper is pkg.llm.client's)",
    ]
    assert private_violations(g) == []  # no module of the package was imported: these are attribute reach-ins only


def test_a_reach_in_through_a_module_is_reported_once(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "wire/ipc.py": "_encoder = None\nclass Framer:\n    _size = 4\n",
        "cli/client.py": "from pkg.wire import ipc\nipc._encoder\nipc.Framer._size\n",
    })
    g = build_graph(pkg)
    assert [str(p) for p in private_violations(g)] == ["pkg/cli/client.py:2: pkg.cli.client uses pkg.wire.ipc._encoder"]
    assert [str(r) for r in reach_ins(g)] == [
        "pkg/cli/client.py:3: pkg.cli.client reaches into ipc.Framer._size (_size is pkg.wire.ipc's)"]


def test_third_party_internals_only_in_the_pygls_adapter(tmp_path: Path) -> None:
    outside = ("import os\nimport _socket\nimport sys\n"
               "from watchfiles._rust_notify import RustNotify\n"  # 4
               "import watchfiles\n"
               "import pygls._compat\n"  # 6
               "from pygls.protocol import JsonRPCProtocol, _dict_to_object\n"  # 7
               "class P(JsonRPCProtocol):\n"
               "    def _send_data(self, data):\n"  # 9
               "        super()._send_data(data)\n"  # 10
               "def f(proto):\n"
               "    os._exit(sys._getframe() and 0)\n"  # the standard library's: not this rule's
               "    watchfiles._rust_notify, JsonRPCProtocol._x\n"  # 13
               "    return proto._shutdown\n")  # 14
    pkg = write_tree(tmp_path, {"lsp/protocol.py": outside, "lsp/pygls_adapter.py": outside})
    g = build_graph(pkg)
    assert [str(f) for f in third_party_violations(g)] == [
        "pkg/lsp/protocol.py:4: pkg.lsp.protocol imports RustNotify from watchfiles._rust_notify, a private module",
        "pkg/lsp/protocol.py:6: pkg.lsp.protocol imports pygls._compat, a private module",
        "pkg/lsp/protocol.py:7: pkg.lsp.protocol imports _dict_to_object, a private name of pygls.protocol",
        "pkg/lsp/protocol.py:9: pkg.lsp.protocol defines _send_data, a private member of pygls",
        "pkg/lsp/protocol.py:10: pkg.lsp.protocol uses super()._send_data, a private member of pygls",
        "pkg/lsp/protocol.py:13: pkg.lsp.protocol uses watchfiles._rust_notify, a private name of watchfiles",
        "pkg/lsp/protocol.py:13: pkg.lsp.protocol uses JsonRPCProtocol._x, a private name of pygls.protocol",
        "pkg/lsp/protocol.py:14: pkg.lsp.protocol uses proto._shutdown, a private member of pygls",
        # the adapter may touch pygls's internals, not watchfiles'
        "pkg/lsp/pygls_adapter.py:4: pkg.lsp.pygls_adapter imports RustNotify from watchfiles._rust_notify,"
        " a private module",
        "pkg/lsp/pygls_adapter.py:13: pkg.lsp.pygls_adapter uses watchfiles._rust_notify, a private name of watchfiles",
    ]
    # pygls's privates defined by a class of the package are still pygls's: no reach-in is reported for them
    assert reach_ins(g) == []


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
    assert (reach_ins(g), third_party_violations(g), unresolved_imports(g)) == ([], [], [])


def test_a_private_name_imported_for_the_type_checker_is_still_used(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "a.py": "class _Shape: pass\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import _Shape\n",
    })
    assert [str(p) for p in private_violations(build_graph(pkg))] == [
        "pkg/b.py:3: pkg.b uses from pkg.a import _Shape (type-only)"]


# --- the real package ---------------------------------------------------------------------------


PERFD_DIR = Path(perfd.__file__).resolve().parent


@functools.cache
def perfd_graph() -> Graph:
    """Built once for the tests below (they only read it)."""
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
    assert not cycles, (f"{len(cycles)} import cycle(s) in perfd (imports inside functions, under TYPE_CHECKING"
                        " and by string count):\n" + "\n".join("  " + describe_cycle(g, c) for c in cycles))


def test_imports_follow_the_rules_of_direction() -> None:
    g = perfd_graph()
    bad = _dedupe_edges(direction_violations(g))
    assert not bad, f"{len(bad)} import(s) against the rules of direction (ARCHITECTURE.md):\n" + "\n".join(
        f"  {e.where()}: {e.src} ({layer(g, e.src)}) imports {e.dst} ({layer(g, e.dst)})"
        + (f" [{e.kind()}]" if e.kind() else "") for e in bad)


def test_no_module_uses_another_modules_private_names() -> None:
    g = perfd_graph()
    bad = private_violations(g)
    assert not bad, f"{len(bad)} use(s) of another module's private name:\n" + "\n".join(f"  {p}" for p in bad)


def test_no_module_reaches_into_another_modules_private_attributes() -> None:
    g = perfd_graph()
    bad = reach_ins(g)
    assert not bad, (f"{len(bad)} reach-in(s) by attribute to a private name of another module (make it public,"
                     " or give the caller a narrow interface):\n" + "\n".join(f"  {r}" for r in bad))


# (module, what) -> why a third-party internal is touched outside the adapter
THIRD_PARTY_ALLOWED: dict[tuple[str, str], str] = {
    ("perfd.daemon.codecache", "imports attr._make, a private module"):
        "the code cache's one hook into attrs: it shadows the global `compile` of attr._make during lsprotocol's "
        "import, and fails safe (an attrs that stops calling it only misses the cache); "
        "tests/unit/test_codecache.py shows attrs still calls it (methods are served from the file)",
}


def test_third_party_internals_only_in_the_adapter() -> None:
    g = perfd_graph()
    bad = [f for f in third_party_violations(g) if (f.src, f.what) not in THIRD_PARTY_ALLOWED]
    assert not bad, (f"{len(bad)} use(s) of a third-party internal outside perfd/{ADAPTER.replace('.', '/')}.py"
                     " (watchfiles' nowhere):\n" + "\n".join(f"  {f}" for f in bad))


# (module, what) -> why an import by a name worked out at run time is fine there
DYNAMIC_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {}


def test_every_import_by_string_is_resolved() -> None:
    g = perfd_graph()
    assert any(e.by_string for e in g.edges), "no import by string found in perfd: is the reader still reading them?"
    bad = unresolved_imports(g, DYNAMIC_IMPORTS_ALLOWED)
    assert not bad, (f"{len(bad)} import(s) of a module named at run time, which the graph cannot follow (name it"
                     " with a literal or a literal table, or allow it here with a reason):\n"
                     + "\n".join(f"  {f}" for f in bad))
    stale = set(DYNAMIC_IMPORTS_ALLOWED) - {(f.src, f.what) for f in g.unresolved}
    assert not stale, f"allowed dynamic imports that no longer occur: {sorted(stale)}"
