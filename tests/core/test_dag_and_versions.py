"""The DAG declaration and stage code versions: shape, ordering, and sensitivity to edits."""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from reflector_cli.pipeline import dag
from reflector_cli.pipeline.versioning import all_code_versions, code_version

SPEC_STAGES = [
    "get_recording",
    "get_participants",
    "pad_track",
    "mixdown_tracks",
    "generate_waveform",
    "transcribe_track",
    "merge_transcripts",
    "detect_topics",
    "generate_title",
    "generate_summary",
    "finalize",
    "cleanup_consent",
    "post_zulip",
    "send_webhook",
]


def test_every_spec_stage_is_declared_once_in_topological_order() -> None:
    assert sorted(dag.STAGE_NAMES) == sorted(SPEC_STAGES)
    dag.validate()
    assert {s.name for s in dag.STAGES if s.per_track} == {"pad_track", "transcribe_track"}


def test_only_a_per_track_stage_gathers_and_only_per_track_parents() -> None:
    import dataclasses

    ok = {s.name: s for s in dag.STAGES}
    top = dataclasses.replace(ok["merge_transcripts"], gathers=("pad_track",))
    odd = dataclasses.replace(ok["transcribe_track"], gathers=("get_recording",))
    for bad in (top, odd):
        stages = [bad if s.name == bad.name else s for s in dag.STAGES]
        with pytest.raises(ValueError, match="gathers"):
            dag.validate(stages)


def test_every_stage_function_resolves_with_matching_models() -> None:
    for s in dag.STAGES:
        fn = s.fn()
        hints = fn.__annotations__
        assert hints["return"] in (s.output_model.__name__, s.output_model), s.name


def test_descendants_of_title() -> None:
    assert dag.descendants("generate_title") == {
        "finalize",
        "cleanup_consent",
        "post_zulip",
        "send_webhook",
    }
    assert "transcribe_track" in dag.ancestors("detect_topics")


def test_code_versions_are_stable_and_distinct() -> None:
    first = all_code_versions()
    assert first == all_code_versions()
    assert len(set(first.values())) == len(first)


def test_stages_never_import_an_engine_or_the_store() -> None:
    forbidden = (
        "hatchet_sdk",
        "celery",
        "reflector_cli.store",
        "reflector_cli.providers",
        "sqlite3",
        "sqlite_utils",
        "reflector_cli.cli",
    )
    stage_dir = Path(dag.__file__).parents[1] / "stages"
    for path in stage_dir.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert not n.startswith(forbidden), f"{path.name} imports {n}"


def test_editing_a_helper_changes_only_dependent_versions(tmp_path: Path, monkeypatch) -> None:
    """Copy the package, change merge's helper, and compare versions in a fresh interpreter."""
    import shutil
    import subprocess

    src = Path(dag.__file__).parents[1]
    shutil.copytree(src, tmp_path / "reflector_cli")
    target = tmp_path / "reflector_cli" / "stages" / "transcript.py"
    text = target.read_text()
    text = text.replace("SEGMENT_SOFT_CHARS = 120", "SEGMENT_SOFT_CHARS = 121")
    # A comment or docstring edit must not change anything.
    text = text.replace('"""merge_transcripts:', '"""Edited docstring. merge_transcripts:')
    target.write_text(text)
    script = textwrap.dedent(
        """
        import json
        from reflector_cli.pipeline.versioning import all_code_versions
        print(json.dumps(all_code_versions()))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    import json

    edited = json.loads(res.stdout)
    current = all_code_versions()
    changed = {k for k in current if current[k] != edited[k]}
    assert changed == {"merge_transcripts"}
    importlib.invalidate_caches()
    assert code_version("merge_transcripts") == current["merge_transcripts"]


# --------------------------------------------------------------------------- declared parents


def _sample(annotation: object) -> object:
    """A small valid value of `annotation` (a list holds one item, so track 0 exists)."""
    import types
    import typing

    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)))
    if origin in (list, tuple, set, frozenset):
        return [_sample(args[0])] if args else []
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.model_validate(
            {n: _sample(f.annotation) for n, f in annotation.model_fields.items()}
        )
    return {str: "x", int: 0, float: 1.0, bool: False}.get(annotation)  # type: ignore[call-overload]


class _OnlyDeclared(dict):
    """Outputs holding just a stage's declared parents; reading any other stage's output is a
    KeyError, which means `build` reads a parent the declaration does not name."""

    def __init__(self, parents: dict[str, object]) -> None:
        super().__init__(parents)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> object:
        if key not in self.keys():
            raise KeyError(f"{key} (not a declared parent)")
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: object = None) -> object:
        return self[key] if key in self.keys() else default


def _outputs_of(parents: tuple[str, ...]) -> _OnlyDeclared:
    values = {}
    for p in parents:
        out = _sample(dag.stage(p).output_model)
        values[p] = [out] if dag.stage(p).per_track else out
    return _OnlyDeclared(values)


def test_every_stage_builds_its_input_from_its_declared_parents_only() -> None:
    from reflector_cli.core import models as m

    pipe = _sample(m.PipelineInput)
    for s in dag.STAGES:
        outs = _outputs_of(s.parents)
        inp = s.build(pipe, outs, 0 if s.per_track else None)
        assert isinstance(inp, s.input_model), s.name
        assert outs.read <= set(s.parents), s.name


def test_the_parent_check_catches_an_undeclared_read() -> None:
    import dataclasses

    import pytest

    from reflector_cli.core import models as m

    title = dag.stage("generate_title")
    sneaky = dataclasses.replace(title, parents=("detect_topics",))  # forgot get_participants
    with pytest.raises(KeyError, match="get_participants"):
        sneaky.build(_sample(m.PipelineInput), _outputs_of(sneaky.parents), None)


def test_fan_out_source_and_success_rule_are_declared_once() -> None:
    assert [s.name for s in dag.STAGES if s.fans_out] == [dag.FANOUT_SOURCE]
    assert [s.name for s in dag.STAGES if s.marks_success] == [dag.SUCCESS_STAGE]
    rec = _sample(dag.stage(dag.FANOUT_SOURCE).output_model)
    assert dag.track_count({}) is None and dag.track_count({dag.FANOUT_SOURCE: rec}) == 1
    assert not dag.succeeded({}) and dag.succeeded({dag.SUCCESS_STAGE: object()})
    # Every per-track stage hangs (directly or not) off the fan-out source.
    for s in dag.STAGES:
        if s.per_track:
            assert dag.FANOUT_SOURCE in dag.ancestors(s.name), s.name
