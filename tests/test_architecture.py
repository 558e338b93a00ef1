"""Import direction, read from the source (AST): no cycles among reflector_cli modules, counting
function-level imports and dag.py's dotted-path strings; stages import no engine, store or CLI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "reflector_cli"
# Modules a stage module must never reach (directly): engines, the run machinery, the store, CLI.
FORBIDDEN_FOR_STAGES = (
    "reflector_cli.providers",
    "reflector_cli.store",
    "reflector_cli.cli",
    "reflector_cli.commands",
    "reflector_cli.runs.process",
    "reflector_cli.providers.recorder",
    "reflector_cli.pipeline.execute",
    "reflector_cli.pipeline",
    "reflector_cli.store.hooks",
    "reflector_cli.runs.replay",
    "reflector_cli.intake.server",
    "hatchet_sdk",
    "celery",
    "typer",
)
DOTTED = re.compile(r"""["'](reflector_cli(?:\.\w+)+):\w+["']""")


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


MODS = _modules()


def _imported(cur: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names an import statement brings in (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parts = cur.split(".") if MODS[cur].name == "__init__.py" else cur.split(".")[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join([*parts, *([base] if base else [])])
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODS]
    return subs + ([base] if len(subs) < len(node.names) else [])


def _owner(name: str) -> str | None:
    while name and name not in MODS:
        name = name.rpartition(".")[0]
    return name or None


def _raw_imports(mod: str) -> set[str]:
    tree = ast.parse(MODS[mod].read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.update(_imported(mod, node))
    return out


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for mod in MODS:
        targets = {_owner(n) for n in _raw_imports(mod)}
        if mod == "reflector_cli.pipeline.dag":
            # Stage functions and hooks named by dotted path are imports too, only later.
            targets |= {_owner(p) for p in DOTTED.findall(MODS[mod].read_text())}
        edges[mod] = {t for t in targets if t and t != mod}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = cycles(_edges())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_dotted_paths_in_the_dag_resolve() -> None:
    text = MODS["reflector_cli.pipeline.dag"].read_text()
    paths = DOTTED.findall(text)
    assert paths and all(p in MODS for p in paths)


def _reachable(mod: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = {mod}, [mod]
    while todo:
        for nxt in edges[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


@pytest.mark.parametrize(
    "mod", sorted(m for m in MODS if m.startswith("reflector_cli.stages")), ids=str
)
def test_stages_reach_no_engine_store_or_cli(mod: str) -> None:
    """Directly or through anything they import (stage code must run on any worker)."""
    reached = _reachable(mod, _edges())
    names = reached | {n for r in reached for n in _raw_imports(r)}
    bad = sorted(
        n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_FOR_STAGES)
    )
    assert not bad, f"{mod} reaches {bad}"


# Layers, top (0) to bottom: a module imports its own package or a layer below, never above.
LAYERS: dict[str, int] = {
    "reflector_cli.cli": 0,
    "reflector_cli.commands": 1,
    "reflector_cli.views": 2,
    "reflector_cli.intake": 3,
    "reflector_cli.runs": 4,
    "reflector_cli.providers": 5,
    "reflector_cli.store": 6,
    "reflector_cli.pipeline": 7,
    "reflector_cli.stages": 8,
    "reflector_cli.llm": 9,
    "reflector_cli.sources": 9,
    "reflector_cli.storage": 10,
    "reflector_cli.core": 11,
    "reflector_cli": 11,
}
MAX_LOOSE_MODULES = 6


def _layer(mod: str) -> tuple[str, int]:
    name = mod
    while name not in LAYERS:
        name = name.rpartition(".")[0]
    return name, LAYERS[name]


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in edges.items():
        src_pkg, src_rank = _layer(src)
        for dst in targets:
            dst_pkg, dst_rank = _layer(dst)
            # The package root binds spawned children to their parent (core.lifeline) and caps BLAS.
            if src != "reflector_cli" and dst_pkg != src_pkg and dst_rank < src_rank:
                bad.append(f"{src} -> {dst}")
    return sorted(bad)


def test_the_layer_checker_finds_an_upward_import() -> None:
    edges = {"reflector_cli.core.models": {"reflector_cli.runs.process"}}
    assert upward_imports(edges) == ["reflector_cli.core.models -> reflector_cli.runs.process"]
    assert upward_imports({"reflector_cli.runs.process": {"reflector_cli.core.models"}}) == []


def test_every_module_sits_in_a_layer() -> None:
    loose = [m for m in MODS if m.count(".") == 1 and MODS[m].name != "__init__.py"]
    assert len(loose) <= MAX_LOOSE_MODULES, loose
    unplaced = [m for m in MODS if m != "reflector_cli" and _layer(m)[0] == "reflector_cli"]
    assert not unplaced, f"modules outside every layer: {unplaced}"


def test_imports_run_one_way() -> None:
    """cli -> commands -> views -> intake -> runs -> providers -> store -> pipeline -> stages ->
    llm/sources -> storage -> core (function-level imports and dotted paths count)."""
    bad = upward_imports(_edges())
    assert not bad, "upward imports: " + "; ".join(bad)


# --------------------------------------------------------------------------- SQL lives in store/

SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA)\s")
SQL_CALLS = ("_one", "_all")  # Store's row helpers; `<x>.conn.execute*` is checked apart


def sql_uses(source: str) -> list[str]:
    """SQL string literals and raw query calls in `source`, as `line: what` entries."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL_START.match(node.value):
                found.append((node.lineno, f"SQL {node.value.split()[0]} literal"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            raw = attr.startswith("execute") and isinstance(owner, ast.Attribute)
            if attr in SQL_CALLS or (raw and owner.attr == "conn"):
                found.append((node.lineno, f".{attr}() call"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_the_sql_checker_finds_queries() -> None:
    src = 'x = store._one("SELECT 1")\ny = store.conn.execute(q)\nz = "Select a stage"\n'
    assert sql_uses(src) == ["1: ._one() call", "1: SQL SELECT literal", "2: .execute() call"]
    assert sql_uses('worker.conn.send(task)\nmsg = "UPDATEs arrive"\n') == []


def test_no_sql_outside_the_store() -> None:
    """Queries are store functions: nothing above store/ writes SQL or calls the raw helpers."""
    bad = [
        f"{mod} {use}"
        for mod, path in sorted(MODS.items())
        if not mod.startswith("reflector_cli.store")
        for use in sql_uses(path.read_text())
    ]
    assert not bad, "SQL outside reflector_cli/store/: " + "; ".join(bad)
