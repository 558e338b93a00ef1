"""`reflector process` on the bundled fixture with the real model: contracts, accuracy, reuse."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchmarks.accuracy import accuracy
from reflector_cli.pipeline.dag import STAGE_NAMES
from tests.cli.conftest import FIXTURE, TRUTH, cli, cli_json

PROCESS_KEYS = {
    "transcript_id",
    "run_id",
    "status",
    "duration_s",
    "title",
    "short_summary",
    "long_summary",
    "participants",
    "topics",
    "word_count",
    "language",
}
GENERIC = {"meeting", "team meeting", "discussion", "untitled", "call"}


def test_process_json_contract(processed: tuple[Path, dict[str, Any]]) -> None:
    _, doc = processed
    assert set(doc) == PROCESS_KEYS
    assert doc["status"] == "ended" and doc["language"] == "en"
    assert doc["run_id"].startswith("r-")
    manifest = json.loads((FIXTURE / "recording.json").read_text())
    names = [p["name"] for p in manifest["participants"]]
    assert [p["name"] for p in doc["participants"]] == names
    assert [p["speaker"] for p in doc["participants"]] == list(range(len(names)))
    assert doc["word_count"] > 50
    assert doc["topics"] and all(
        set(t) == {"title", "summary", "start", "duration"} for t in doc["topics"]
    )
    title = doc["title"]
    assert title and len(title.split()) <= 10 and title.lower() not in GENERIC
    assert doc["long_summary"].startswith("# Quick recap") and "# Summary" in doc["long_summary"]
    assert "Speaker 1" not in doc["short_summary"]
    truth_end = max(u["end"] for u in json.loads(TRUTH.read_text())["utterances"])
    assert truth_end <= doc["duration_s"] <= truth_end + 5


def test_words_land_at_the_right_time_and_speaker(processed: tuple[Path, dict[str, Any]]) -> None:
    data, doc = processed
    words = cli_json("export", doc["transcript_id"], "--format", "json", data_dir=data)["words"]
    assert all(0 < w["probability"] <= 1 for w in words)  # whisper's, kept per word
    acc = accuracy(words, json.loads(TRUTH.read_text())["utterances"])
    assert acc["words_in_utterances"] >= 0.9
    assert acc["speaker_accuracy"] >= 0.98
    assert acc["utterances_found"] >= 0.9
    assert acc["median_onset_error_s"] <= 0.4
    assert max(acc["wer_by_speaker"].values()) <= 0.30, acc["wer_by_speaker"]


def test_second_process_returns_stored_result_without_a_new_run(
    processed: tuple[Path, dict[str, Any]],
) -> None:
    data, doc = processed
    runs_before = cli_json("runs", data_dir=data)
    again = cli_json("process", str(FIXTURE), data_dir=data)
    assert again == doc
    assert cli_json("runs", data_dir=data) == runs_before


def test_runs_show_lists_every_stage_and_track(processed: tuple[Path, dict[str, Any]]) -> None:
    data, doc = processed
    run = cli_json("runs", "show", doc["run_id"], data_dir=data)
    assert set(run) == {"run_id", "status", "provider", "stages"}
    assert run["status"] == "ended" and run["provider"] == "local"
    assert {s["stage"] for s in run["stages"]} == set(STAGE_NAMES)
    n_tracks = len(doc["participants"])
    for name in ("pad_track", "transcribe_track"):
        assert sorted(s["track"] for s in run["stages"] if s["stage"] == name) == list(
            range(n_tracks)
        )
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    for s in run["stages"]:
        assert set(s) >= {
            "stage",
            "track",
            "status",
            "attempts",
            "duration_s",
            "error",
            "started_at",
            "ended_at",
            "reused",
            "output",
        }
        # Delivery is not configured here: its rows say so instead of claiming `done`.
        expected = "skipped" if s["stage"] in ("post_zulip", "send_webhook") else "done"
        assert s["status"] == expected and s["attempts"] == 1 and s["reused"] is False
        assert iso.match(s["started_at"]) and iso.match(s["ended_at"])
        if s["stage"] not in ("pad_track", "transcribe_track"):
            assert s["track"] is None
    merge = next(s for s in run["stages"] if s["stage"] == "merge_transcripts")
    # One voice per track in the fixture: crosstalk suppression runs and finds nothing to drop.
    assert merge["detail"].endswith("crosstalk removed: " + "/".join(["0"] * n_tracks))


def test_every_export_format_uses_speaker_names(processed: tuple[Path, dict[str, Any]]) -> None:
    data, doc = processed
    names = [p["name"] for p in doc["participants"]]
    for fmt in ("txt", "srt", "vtt", "md"):
        text = cli("export", doc["transcript_id"], "--format", fmt, data_dir=data).stdout
        for name in names:
            assert name in text, (fmt, name)
    vtt = cli("export", doc["transcript_id"], "--format", "vtt", data_dir=data).stdout
    assert vtt.startswith("WEBVTT")
    exported = cli_json("export", doc["transcript_id"], "--format", "json", data_dir=data)
    assert {k: exported[k] for k in PROCESS_KEYS} == doc
    assert len(exported["words"]) == doc["word_count"]
    assert set(exported["words"][0]) == {"speaker", "start", "end", "text", "probability"}


def test_show_finds_transcript_by_recording_and_run(processed: tuple[Path, dict[str, Any]]) -> None:
    data, doc = processed
    by_run = cli_json("show", doc["run_id"], data_dir=data)
    assert by_run["transcript_id"] == doc["transcript_id"]
    by_rec = cli_json("show", by_run["recording_id"], data_dir=data)
    assert by_rec["title"] == doc["title"] and by_rec["audio_deleted"] is False


def test_force_recomputes_every_stage_with_the_same_result(
    processed: tuple[Path, dict[str, Any]],
) -> None:
    data, doc = processed
    forced = cli_json("process", str(FIXTURE), "--force", data_dir=data)
    assert forced["run_id"] != doc["run_id"]
    assert {k: v for k, v in forced.items() if k != "run_id"} == {
        k: v for k, v in doc.items() if k != "run_id"
    }
    run = cli_json("runs", "show", forced["run_id"], data_dir=data)
    assert not any(s["reused"] for s in run["stages"])


def test_doctor_reports_ok(tmp_path: Path) -> None:
    report = cli_json("doctor", data_dir=tmp_path)
    assert report["ok"] is True
    assert {c["name"] for c in report["checks"]} >= {"whisper model", "audio codecs", "database"}
    asr = next(c for c in report["checks"] if c["name"] == "asr options")
    assert "beam 1 · batch" in asr["detail"]
    batched = cli_json("doctor", data_dir=tmp_path, env={"REFLECTOR_BATCH_SIZE": "4"})
    assert "batch 4" in next(c for c in batched["checks"] if c["name"] == "asr options")["detail"]


def test_a_new_batch_size_reruns_the_transcription_and_reuses_the_rest(tmp_path: Path) -> None:
    first = cli_json("process", str(FIXTURE), data_dir=tmp_path)
    second = cli_json("process", str(FIXTURE), "--batch-size", "2", data_dir=tmp_path)
    assert second["run_id"] != first["run_id"] and second["word_count"] > 50
    stages = cli_json("runs", "show", second["run_id"], data_dir=tmp_path)["stages"]
    reused = {(s["stage"], s["track"]): s["reused"] for s in stages}
    n = len(first["participants"])
    # The batch size is part of the transcription's input: its checkpoints no longer match.
    assert all(reused[("pad_track", i)] for i in range(n))
    assert not any(reused[("transcribe_track", i)] for i in range(n))
    res = cli("process", str(FIXTURE), "--batch-size", "0", data_dir=tmp_path, check=False)
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0
    assert "batch_size" in res.stderr and "Traceback" not in res.stderr


def test_version_and_usage_errors(tmp_path: Path) -> None:
    assert cli("--version", data_dir=tmp_path).stdout.startswith("reflector ")
    res = cli("process", data_dir=tmp_path, check=False)
    assert res.returncode == 2
    res = cli("export", "x", "--format", "pdf", data_dir=tmp_path, check=False)
    assert res.returncode == 2


def test_dry_run_plans_and_estimates_without_storing_or_calling(tmp_path: Path) -> None:
    data = tmp_path / "data"
    plan = cli_json("process", str(FIXTURE), "--dry-run", data_dir=data)
    assert [t["name"] for t in plan["tracks"]] == ["Alice", "Bob", "Carol"]
    assert [t["offset_s"] for t in plan["tracks"]] == [0.0, 6.0, 15.0]
    assert plan["llm"]["backend"] == "extractive" and plan["llm"]["calls"] == 0
    # With a key the estimate is for Claude; the unreachable base URL proves no call is made.
    env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    paid = cli_json("process", str(FIXTURE), "--dry-run", data_dir=data, env=env)
    assert paid["llm"]["backend"] == "anthropic" and paid["llm"]["calls"] > 0
    assert paid["llm"]["input_tokens"] > paid["words_estimate"]
    assert not data.exists()
