"""`perfd schema`: JSON Schemas of the protocol Structs, generated into schemas/ (never hand-written).

The extension's TypeScript types (editor-client/src/pure/wire.ts) are generated from these files
in turn: after a change here, run `npm run gen:types` in editor-client (its tests check).
"""

from __future__ import annotations

import inspect
import os

import msgspec

from perfd.wire.protocol import SCHEMA_TYPES


def repo_schemas_dir() -> str:
    return os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "schemas"))


# msgspec decodes a field typed `object` as any JSON value but writes no schema for it (and
# refuses an empty one from a hook). A mark stands in, and is taken out again, so that the
# schema reads as msgspec writes it for Any: {} (plus a default), nothing for a dict's values.
_ANY_MARK = "x-perfd-any-value"
_CONTAINERS = ("additionalProperties", "items")


def _schema_hook(t: type) -> dict[str, object]:
    if t is object:
        return {_ANY_MARK: True}
    raise NotImplementedError


def render() -> dict[str, bytes]:
    """file name -> pretty JSON bytes."""
    out = {}
    for t in SCHEMA_TYPES:
        schema = _clean(msgspec.json.schema(t, schema_hook=_schema_hook))
        out[f"{t.__name__}.json"] = msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n"
    return out


def _clean(node: object) -> object:
    """Docstrings as inspect.cleandoc gives them, whichever msgspec (0.23 and Python 3.13 dedent
    them, older ones do not): the same Structs give the same files everywhere. No any-value mark."""
    if isinstance(node, dict):
        return {k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else _clean(v)
                for k, v in node.items()
                if k != _ANY_MARK and not (k in _CONTAINERS and v == {_ANY_MARK: True})}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def write(folder: str | None = None) -> list[str]:
    """Write every schema into `folder` (default: the repository's schemas/); returns the files changed."""
    folder = folder or repo_schemas_dir()
    os.makedirs(folder, exist_ok=True)
    changed = []
    for name, data in render().items():
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    continue
        except FileNotFoundError:
            pass
        with open(path, "wb") as f:
            f.write(data)
        changed.append(path)
    return changed


def stale(folder: str | None = None) -> list[str]:
    """Schema files that are missing or differ from what the Structs generate."""
    folder = folder or repo_schemas_dir()
    bad = []
    for name, data in render().items():
        try:
            with open(os.path.join(folder, name), "rb") as f:
                if f.read() != data:
                    bad.append(name)
        except FileNotFoundError:
            bad.append(name)
    return bad
