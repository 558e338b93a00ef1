"""Files out through the real CLI: --output-dir with every format, search, rename, nested tracks."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from reflector_cli.views.outputs import FORMATS
from tests.cli.conftest import FIXTURE, cli, cli_json


def test_format_all_writes_every_format_named_by_title_and_date(
    processed: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data, doc = processed
    out = tmp_path / "out"
    res = cli("export", doc["transcript_id"], "--format", "all", "--output-dir", str(out),
              data_dir=data)  # fmt: skip
    files = sorted(out.iterdir())
    assert [f.suffix[1:] for f in files] == sorted(FORMATS) and len(files) >= 6
    # Title "… and …" on the fixture's manifest date, 2024-11-29: lowercase, hyphens only.
    stem = files[0].stem
    assert re.fullmatch(r"2024-11-29-[a-z0-9-]+", stem) and all(f.stem == stem for f in files)
    assert all(str(f) in res.stderr for f in files)
    assert json.loads((out / f"{stem}.json").read_text())["transcript_id"] == doc["transcript_id"]
    tsv = (out / f"{stem}.tsv").read_text().splitlines()
    assert tsv[0] == "start\tend\tspeaker\ttext"
    rows = [r.split("\t") for r in tsv[1:]]
    assert all(len(r) == 4 and r[0].isdigit() and int(r[1]) > int(r[0]) for r in rows)
    assert {r[2] for r in rows} == {p["name"] for p in doc["participants"]}
    # The same bytes as a single-format export to stdout.
    md = cli("export", doc["transcript_id"], "-f", "md", data_dir=data).stdout
    assert (out / f"{stem}.md").read_text() == md


def test_format_list_and_bad_formats(
    processed: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data, doc = processed
    out = tmp_path / "two"
    cli("export", doc["transcript_id"], "-f", "srt, tsv", "--output-dir", str(out), data_dir=data)
    assert sorted(f.suffix for f in out.iterdir()) == [".srt", ".tsv"]
    usage = cli("export", doc["transcript_id"], "-f", "docx", data_dir=data, check=False)
    assert usage.returncode == 2 and "unknown format docx" in usage.stderr
    for args, problem in [
        (["-f", "md,srt"], "several formats need --output-dir"),
        (["-f", "md", "-o", str(tmp_path / "x.md"), "--output-dir", str(out)], "give one of them"),
    ]:
        res = cli("export", doc["transcript_id"], *args, data_dir=data, check=False)
        assert res.returncode == 1 and problem in res.stderr and "Traceback" not in res.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = cli("export", doc["transcript_id"], "--output-dir", str(blocker), data_dir=data,
              check=False)  # fmt: skip
    assert res.returncode == 1 and "not a directory" in res.stderr


def test_markdown_never_says_a_sentence_twice(processed: tuple[Path, dict[str, Any]]) -> None:
    data, doc = processed
    md = cli("export", doc["transcript_id"], "-f", "md", data_dir=data).stdout
    head = md.split("## Transcript")[0]
    # Sentences of four words or more; titles and headings are not sentences.
    found = [
        " ".join(s.split()).casefold()
        for s in re.split(r"(?<=[.!?])\s+|\n", head)
        if len(s.split()) >= 4 and s.rstrip().endswith((".", "!", "?"))
    ]
    assert found, head
    assert [s for s, n in Counter(found).items() if n > 1] == []
    # The stored summaries themselves say different things.
    short = set(re.split(r"(?<=[.!?])\s+", doc["short_summary"]))
    topic = {s for t in doc["topics"] for s in re.split(r"(?<=[.!?])\s+", t["summary"])}
    assert not short & topic


def test_search_finds_the_meeting_by_two_words(processed: tuple[Path, dict[str, Any]]) -> None:
    data, doc = processed
    hits = cli_json("search", "database", "migration", data_dir=data)
    assert [h["transcript_id"] for h in hits] == [doc["transcript_id"]]
    hit = hits[0]
    assert hit["speaker"] == "Bob" and 10 < hit["start"] < 20  # "the database migration", 00:12
    assert hit["date"] == "2024-11-29" and "[" in hit["snippet"]
    table = cli("search", "survey", "Friday", data_dir=data).stdout
    assert "Carol" in table and doc["transcript_id"] in table
    assert cli_json("search", "zebra", "migration", data_dir=data) == []
    # FTS syntax in user words is taken literally, never an error.
    assert cli_json("search", 'NEAR("x', "OR", "*", data_dir=data) == []


def test_rename_reaches_every_view_and_the_summaries(
    processed: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data0, doc = processed
    data = tmp_path / "data"
    shutil.copytree(data0, data)
    tid = doc["transcript_id"]
    res = cli_json("rename", tid, "bob", "Robert Smith", data_dir=data)
    assert res["old"] == "Bob" and res["mentions"] > 0
    view = cli_json("show", tid, data_dir=data)
    assert [p["name"] for p in view["participants"]] == ["Alice", "Robert Smith", "Carol"]
    summaries = " ".join([view["short_summary"], view["long_summary"],
                          *(t["summary"] for t in view["topics"])])  # fmt: skip
    assert not re.search(r"\bBob\b", summaries) and "Robert Smith" in summaries
    for fmt in ("txt", "srt", "vtt", "md", "tsv"):
        text = cli("export", tid, "-f", fmt, data_dir=data).stdout
        assert "Robert Smith" in text, fmt
    assert "Bob:" not in cli("export", tid, "-f", "txt", data_dir=data).stdout
    # By number, with a message that says what happened to the summaries.
    msg = cli("rename", tid, "3", "Carol King", data_dir=data).stderr
    assert re.search(r"Carol → Carol King; renamed in \d+ places? in the summaries", msg)
    bad = cli("rename", tid, "Dave", "X", data_dir=data, check=False)
    assert bad.returncode == 1 and "no such speaker" in bad.stderr and "1=Alice" in bad.stderr
    # A later run rewrites the transcript from the source; the renames are applied again.
    cli("replay", doc["run_id"], "--from", "finalize", data_dir=data)
    names = [p["name"] for p in cli_json("show", tid, data_dir=data)["participants"]]
    assert names == ["Alice", "Robert Smith", "Carol King"]


def test_nested_manifest_processes(tmp_path: Path) -> None:
    rec = tmp_path / "meeting"
    (rec / "tracks").mkdir(parents=True)
    manifest = json.loads((FIXTURE / "recording.json").read_text())
    for p in manifest["participants"]:
        shutil.copy(FIXTURE / p["file"], rec / "tracks" / p["file"])
        p["file"] = f"tracks/{p['file']}"
    (rec / "recording.json").write_text(json.dumps(manifest))
    doc = cli_json("process", str(rec), "--no-deliver", data_dir=tmp_path / "data")
    assert doc["status"] == "ended" and doc["word_count"] > 100
    assert [p["name"] for p in doc["participants"]] == ["Alice", "Bob", "Carol"]
    manifest["participants"][0]["file"] = "../meeting/tracks/alice.webm"
    (rec / "recording.json").write_text(json.dumps(manifest))
    res = cli("process", str(rec), data_dir=tmp_path / "data", check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "participants[0].file '../meeting/tracks/alice.webm'" in res.stderr
