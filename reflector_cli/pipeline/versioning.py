"""Stage code versions and input hashes: the keys that decide whether a checkpoint can be reused.

A stage's code version hashes the AST (docstrings dropped, so comments and docs don't count)
of its function plus every project function, class and constant it reaches, plus the
declared `data_version`; editing a helper two calls deep still changes the version.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import textwrap
import types
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reflector_cli.pipeline.dag import STAGES, Stage

PROJECT = "reflector_cli"


def canonical_json(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def input_hash(inp: BaseModel) -> str:
    return sha256_text(canonical_json(inp))[:32]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return tree


def _is_project(obj: Any) -> bool:
    mod = getattr(obj, "__module__", None) or ""
    return mod == PROJECT or mod.startswith(PROJECT + ".")


def _const_repr(value: object) -> str:
    """repr with sets sorted, so hash randomisation can't change a version."""
    if isinstance(value, frozenset):
        return repr(sorted(repr(v) for v in value))
    return repr(value)


_CONSTANT_TYPES = (int, float, str, bool, tuple, frozenset)
Facts = tuple[str, tuple[tuple[str, str], ...], tuple[Any, ...]]


@cache
def _facts(obj: Any) -> Facts:
    """One function or class, parsed once for every stage that reaches it: the AST digest
    of its source (docstrings dropped), the module constants it names (name, repr) and the
    project objects it names."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError):
        return repr(obj), (), ()
    refs, consts = _referenced(obj, tree)
    return ast.dump(_strip_docstrings(tree), annotate_fields=False), consts, refs


def _referenced(obj: Any, tree: ast.AST) -> tuple[tuple[Any, ...], tuple[tuple[str, str], ...]]:
    """Project objects named inside `obj`'s source, and the module constants among them."""
    module = inspect.getmodule(obj)
    if module is None:
        return (), ()
    scope = vars(module)
    found: list[Any] = []
    consts: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in scope:
            value = scope[node.id]
            if isinstance(value, _CONSTANT_TYPES) and node.id.isupper():
                consts.append((f"{module.__name__}.{node.id}", _const_repr(value)))
            found.append(value)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base = scope.get(node.value.id)
            if isinstance(base, types.ModuleType) and base.__name__.startswith(PROJECT):
                value = getattr(base, node.attr, None)
                if isinstance(value, _CONSTANT_TYPES) and node.attr.isupper():
                    consts.append((f"{base.__name__}.{node.attr}", _const_repr(value)))
                found.append(value)
    return tuple(o for o in found if o is not None), tuple(consts)


def _closure(root: Any) -> dict[str, str]:
    seen: dict[str, str] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if isinstance(obj, (types.FunctionType, type)) and _is_project(obj):
            name = f"{obj.__module__}.{obj.__qualname__}"
            if name in seen:
                continue
            digest, consts, refs = _facts(obj)
            seen[name] = digest
            seen.update(consts)
            stack.extend(refs)
    return seen


def _compute(stage_name: str) -> str:
    from reflector_cli.pipeline.dag import stage as get_stage

    s: Stage = get_stage(stage_name)
    parts = _closure(s.fn())
    blob = json.dumps({"parts": parts, "data_version": s.data_version}, sort_keys=True)
    return sha256_text(blob)[:16]


def _package_fingerprint() -> str:
    """Changes whenever any source file of the package changes (path, size, mtime)."""
    root = Path(__file__).resolve().parents[1]  # the whole reflector_cli package
    h = hashlib.sha256(str(root).encode())
    for p in sorted(root.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reflector" / f"code-versions-{_package_fingerprint()}.json"


@cache
def all_code_versions() -> dict[str, str]:
    """Every stage's version; parsing the sources takes ~0.6 s, so the result is cached on disk
    per package fingerprint (any edited file means a fresh computation)."""
    path = _cache_file()
    try:
        cached = json.loads(path.read_text())
        if set(cached) == {s.name for s in STAGES}:
            return cached
    except (OSError, ValueError):
        pass
    versions = {s.name: _compute(s.name) for s in STAGES}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(versions, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the recomputation next time
    return versions


def code_version(stage_name: str) -> str:
    return all_code_versions()[stage_name]
