"""`reflector compare`, `process --shadow` and `runs --comparisons` through the real CLI, with a
real redis-server and a real Celery worker."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from reflector_cli.pipeline.dag import STAGE_NAMES
from tests.cli.conftest import FIXTURE, cli, cli_json
from tests.providers.celery_env import CeleryWorker, start_redis, stop_redis


@pytest.fixture(scope="module")
def celery_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    base = tmp_path_factory.mktemp("celery-cli")
    data = base / "data"
    env = start_redis(base / "redis")
    env["REFLECTOR_DATA_DIR"] = str(data)
    worker = CeleryWorker(env, base / "worker.log")
    try:
        worker.wait_ready()
        yield data, env
    finally:
        worker.stop()
        stop_redis(base / "redis")


def test_compare_local_and_celery_agree_then_a_perturbed_run_differs(
    celery_cli: tuple[Path, dict[str, str]],
) -> None:
    data, env = celery_cli
    report = cli_json("compare", str(FIXTURE), "--local", "--celery", data_dir=data, env=env)
    assert report["agree"] is True
    assert {row["stage"] for row in report["stages"]} == set(STAGE_NAMES)
    assert report["transcript"]["speakers_equal"] is True
    assert set(report["overhead_vs_local"]) >= {"celery"}
    listed = cli_json("runs", "--comparisons", data_dir=data, env=env)
    assert listed[0]["id"] == report["id"] and listed[0]["agree"] is True

    # Perturb the Celery run's stored title, then compare the same runs again.
    conn = sqlite3.connect(data / "reflector.sqlite3")
    run = report["runs"]["celery"]
    out = json.loads(
        conn.execute(
            "SELECT output FROM stage_runs WHERE run_id = ? AND stage = 'generate_title'", (run,)
        ).fetchone()[0]
    )
    out["title"] = "Something Else Entirely"
    conn.execute(
        "UPDATE stage_runs SET output = ?, output_hash = 'perturbed' WHERE run_id = ?"
        " AND stage = 'generate_title'",
        (json.dumps(out), run),
    )
    conn.commit()
    conn.close()
    res = cli(
        "compare",
        str(FIXTURE),
        "--local",
        "--celery",
        "--reuse",
        data_dir=data,
        env=env,
        check=False,
    )
    assert res.returncode == 1
    assert "generate_title" in res.stderr


def test_process_with_a_celery_shadow_stores_a_comparison_and_keeps_the_transcript(
    celery_cli: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    _, env = celery_cli
    data = Path(env["REFLECTOR_DATA_DIR"])
    doc = cli_json("process", str(FIXTURE), "--force", "--shadow", "celery", data_dir=data, env=env)
    assert doc["status"] == "ended"
    runs = cli_json("runs", data_dir=data, env=env)
    shadow = [r for r in runs if r["role"] == "shadow"][0]
    assert shadow["provider"] == "celery" and shadow["status"] == "ended"
    shown = cli_json("show", doc["transcript_id"], data_dir=data, env=env)
    assert shown["run_id"] == doc["run_id"]  # the shadow never owns the transcript
    comparisons = cli_json("runs", "--comparisons", data_dir=data, env=env)
    assert comparisons[0]["runs"]["celery"] == shadow["id"] and comparisons[0]["agree"] is True


def test_compare_needs_two_providers(tmp_path: Path) -> None:
    res = cli("compare", str(FIXTURE), "--local", data_dir=tmp_path, check=False)
    assert res.returncode == 2
