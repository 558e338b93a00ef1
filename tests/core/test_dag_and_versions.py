"""The DAG declaration and stage code versions: shape, ordering, and sensitivity to edits."""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
from pathlib import Path

from reflector_cli import dag
from reflector_cli.versioning import all_code_versions, code_version

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
    stage_dir = Path(dag.__file__).parent / "stages"
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

    src = Path(dag.__file__).parent
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
        from reflector_cli.versioning import all_code_versions
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
