"""What people read at an 80-column terminal: `runs`, `runs show`, `show`, `stats`, and the
HTML report of the real processed fixture rendered by headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from tests.chromium import dump_dom
from tests.cli.conftest import FIXTURE, cli, cli_json
from tests.stages.delivery_fakes import WEBHOOK_SECRET, webhook_receiver

NARROW = {"COLUMNS": "80"}
SHAPES = re.compile(r"<(rect|line|path|circle|polyline|polygon)\b")


def narrow(*args: str, data: Path) -> str:
    text = cli(*args, data_dir=data, env=NARROW).stdout
    long = [line for line in text.splitlines() if len(line) > 80]
    assert not long, long
    return text


def names() -> list[str]:
    return [p["name"] for p in json.loads((FIXTURE / "recording.json").read_text())["participants"]]


def test_runs_show_fits_80_columns_with_whole_names_and_honest_statuses(
    processed: tuple[Path, dict[str, Any]],
) -> None:
    data, doc = processed
    text = narrow("runs", "show", doc["run_id"], data=data)
    assert any(line.startswith("transcribe_track ") for line in text.splitlines())
    for delivery in ("post_zulip", "send_webhook"):
        assert re.search(rf"^{delivery}\s+skipped\b", text, re.M), text
    assert re.search(r"^stage\s+track\s+status\s+tries\s+took", text, re.M), text
    run = cli_json("runs", "show", doc["run_id"], data_dir=data)
    by = {(s["stage"], s["track"]): s for s in run["stages"]}
    assert by[("post_zulip", None)]["status"] == "skipped"
    assert by[("send_webhook", None)]["status"] == "skipped"
    assert by[("transcribe_track", 0)]["status"] == "done"
    for s in run["stages"]:
        assert s["error"] is None
        assert isinstance(s["duration_s"], float) and s["duration_s"] >= 0
    assert by[("transcribe_track", 0)]["duration_s"] > 0


def test_runs_lists_whole_ids_and_filters(processed: tuple[Path, dict[str, Any]]) -> None:
    data, doc = processed
    text = narrow("runs", data=data)
    assert re.search(rf"^{doc['run_id']}\s", text, re.M), text
    ended = cli_json("runs", "--status", "ended", "--since", "24h", data_dir=data)
    assert doc["run_id"] in {r["id"] for r in ended}
    assert all(r["status"] == "ended" for r in ended)
    assert cli_json("runs", "--status", "error", data_dir=data) == []
    assert cli_json("runs", "--provider", "celery", data_dir=data) == []
    assert cli_json("runs", "--since", "2999-01-01", data_dir=data) == []
    missing = cli("runs", "show", "r-zzzz", data_dir=data, check=False)
    assert missing.returncode == 1 and "`reflector runs` lists whole ids" in missing.stderr
    bad = cli("runs", "--since", "yesterday", data_dir=data, check=False)
    assert bad.returncode == 1 and "--since" in bad.stderr and "Traceback" not in bad.stderr


def test_show_names_speakers_with_talk_time_and_a_sparkline(
    processed: tuple[Path, dict[str, Any]],
) -> None:
    data, doc = processed
    text = narrow("show", doc["transcript_id"], data=data)
    for name in names():
        assert re.search(rf"^  {name}\s+█+", text, re.M), text
    assert re.search(r"^  [▁▂▃▄▅▆▇█ ]{60,}$", text, re.M), text
    assert "· en ·" in text
    shown = cli_json("show", doc["transcript_id"], data_dir=data)
    assert shown["language"] == "en"
    talk = {t["name"]: t["seconds"] for t in shown["talk_time"]}
    assert set(talk) == set(names()) and all(v > 3 for v in talk.values())
    assert sum(talk.values()) <= doc["duration_s"]


def test_stats_counts_the_run_per_provider(processed: tuple[Path, dict[str, Any]]) -> None:
    data, doc = processed
    stats = cli_json("stats", "--since", "7d", data_dir=data)
    local = stats["providers"]["local"]
    ended = [r for r in cli_json("runs", "--provider", "local", data_dir=data)]
    assert local["runs"] == len(ended) >= 1
    assert local["failures_by_stage"] == {}
    assert local["stages"]["transcribe_track"]["wall_s"]["n"] >= len(names())
    assert local["stages"]["transcribe_track"]["per_audio_min_s"]["p50"] > 0
    narrow("stats", data=data)


def test_html_export_of_the_fixture_in_chromium(
    processed: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data, doc = processed
    page = tmp_path / "report.html"
    cli("export", doc["transcript_id"], "--format", "html", "-o", str(page), data_dir=data)
    dom = dump_dom(page)
    assert len(SHAPES.findall(dom)) >= 255
    assert "2024-11-29 09:00 UTC" in dom and "release-planning" in dom  # from the manifest
    for name in names():
        assert name in dom
    for t in doc["topics"]:
        assert t["title"] in dom
    words = cli_json("export", doc["transcript_id"], data_dir=data)["words"]
    for w in words[:: max(1, len(words) // 10)]:
        assert w["text"].strip() in dom
    audio = re.search(r'<audio id="player"[^>]* src="(file:[^"]+)"', dom)
    assert audio and audio.group(1).endswith("mixdown.mp3")
    assert not re.search(r"""(src|href)="https?:""", dom)
    embedded = cli(
        "export", doc["transcript_id"], "--format", "html", "--embed-audio", data_dir=data
    ).stdout
    assert 'src="data:audio/mpeg;base64,' in embedded


def test_a_webhook_that_fails_after_its_retries_is_failed_with_its_error(
    processed: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(processed[0], data)
    with webhook_receiver() as hook:
        hook.responses = [500] * 10
        env = {
            "WEBHOOK_URL": hook.url,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "REFLECTOR_WEBHOOK_BACKOFF": "0",
            "REFLECTOR_DELIVERY_ATTEMPTS": "3",
        }
        res = cli("replay", processed[1]["run_id"], "--from", "send_webhook", "--json",
                  data_dir=data, env=env)  # fmt: skip
    run_id = json.loads(res.stdout)["run_id"]
    assert len(hook.deliveries) == 3
    run = cli_json("runs", "show", run_id, data_dir=data)
    hook_row = next(s for s in run["stages"] if s["stage"] == "send_webhook")
    assert run["status"] == "ended"  # delivery never fails the transcript
    assert hook_row["status"] == "failed" and hook_row["attempts"] == 3
    assert "500" in hook_row["error"] and "token" not in hook_row["error"]
    text = cli("runs", "show", run_id, data_dir=data, env=NARROW).stdout
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("send_webhook "))
    assert re.match(r"^send_webhook\s+failed\s+3\b", lines[at]), lines[at]
    assert lines[at + 1].lstrip().startswith("↳")
    assert "500 (gave up after 3 attempts)" in " ".join(x.strip() for x in lines[at + 1 : at + 4])
    assert all(len(line) <= 80 for line in lines)
    stats = cli_json("stats", data_dir=data)["providers"]["local"]
    assert stats["failures_by_stage"] == {"send_webhook": 1} and stats["retries"] >= 2
