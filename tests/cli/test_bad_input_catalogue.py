"""Every bad input of issue 12 through the real CLI: exit 1, one line naming the field or file,
no traceback, and the database exactly as it was (row counts of every table unchanged)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reflector_cli.intake.server import sign_daily
from tests.cli.conftest import FIXTURE, REFLECTOR, ROOT, cli
from tests.sources.daily_fake import API_KEY, FakeDaily, free_port, recording, serve, track_key
from tests.test_server_guard import events_until_closed, raw_post, store_finished

TABLES = ("recordings", "transcripts", "runs", "stage_runs", "events", "words", "triggers")
YEARS_3_MS = 3 * 365 * 24 * 3600 * 1000
REC_START_MS = 1732870800000


def counts(data: Path) -> dict[str, int]:
    conn = sqlite3.connect(data / "reflector.sqlite3")
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data dir that already holds one recording with a run, so "nothing stored" also
    means "nothing lost"."""
    d = tmp_path / "data"
    store_finished(d / "reflector.sqlite3", "rec-kept")
    return d


def _meeting(tmp: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    folder = tmp / "meeting"
    shutil.copytree(FIXTURE, folder)
    if edit:
        doc = json.loads((folder / "recording.json").read_text())
        edit(doc)
        (folder / "recording.json").write_text(json.dumps(doc))
    return folder


def _offset(value: float) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["participants"][1].__setitem__("offset_s", value)


def _raw_manifest(tmp: Path, old: str, new: str) -> Path:
    """The fixture with a manifest edited as text (for JSON's `Infinity` and `NaN`)."""
    folder = _meeting(tmp)
    text = (folder / "recording.json").read_text()
    assert old in text
    (folder / "recording.json").write_text(text.replace(old, new, 1))
    return folder


def _daily_folder(tmp: Path) -> Path:
    folder = tmp / "daily"
    folder.mkdir()
    late = REC_START_MS + YEARS_3_MS
    shutil.copy(FIXTURE / "alice.webm", folder / f"{REC_START_MS}-alice-cam-audio-{late}.webm")
    return folder


def _huge_manifest(tmp: Path) -> Path:
    folder = _meeting(tmp)
    doc = json.loads((folder / "recording.json").read_text())
    doc["room"] = "x" * (20 * 1024 * 1024)
    (folder / "recording.json").write_text(json.dumps(doc))
    return folder


def _cut_webm(tmp: Path) -> Path:
    folder = _meeting(tmp)
    raw = (FIXTURE / "alice.webm").read_bytes()
    (folder / "alice.webm").write_bytes(raw[: len(raw) * 6 // 10])
    return folder


@contextlib.contextmanager
def _daily_api(tmp: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    """A Daily recording (fake REST API on 127.0.0.1) whose track key starts 3 years late."""
    rid = "7d4c1a2b-3e5f-4a6b-8c7d-9e0f1a2b3c4d"
    key = track_key("alice", "cam-audio", YEARS_3_MS, rec_start_ms=REC_START_MS)
    with serve(FakeDaily()) as api:
        api.recordings[rid] = recording(rid, [(key, 1000)], duration=67.0)
        yield [rid], {"DAILY_API_KEY": API_KEY, "DAILY_API_URL": api.url}


# kind -> (build(tmp) -> (args, env), text the one line must name)
Build = Callable[[Path], Any]
CASES: dict[str, tuple[Build, str]] = {
    "offset-1e9": (lambda t: [str(_meeting(t, _offset(1e9)))], "participants[1].offset_s: 1e+09"),
    "offset-1e308": (lambda t: [str(_meeting(t, _offset(1e308)))], "participants[1].offset_s"),
    "offset-Infinity": (
        lambda t: [str(_raw_manifest(t, '"offset_s": 6.0', '"offset_s": Infinity'))],
        "participants[1].offset_s: inf",
    ),
    "offset-NaN": (
        lambda t: [str(_raw_manifest(t, '"offset_s": 6.0', '"offset_s": NaN'))],
        "participants[1].offset_s: nan",
    ),
    "offset-negative": (lambda t: [str(_meeting(t, _offset(-5)))], "participants[1].offset_s"),
    "daily-name-3-years-late": (lambda t: [str(_daily_folder(t))], "cam-audio-"),
    "daily-api-3-years-late": (_daily_api, "offset from the key name"),
    "manifest-20MB": (lambda t: [str(_huge_manifest(t))], "recording.json"),
    "room-300-chars": (
        lambda t: [str(_meeting(t, lambda d: d.__setitem__("room", "r" * 300)))],
        "room",
    ),
    "name-300-chars": (
        lambda t: [str(_meeting(t, lambda d: d["participants"][0].__setitem__("name", "n" * 300)))],
        "participants[0].name",
    ),
    "started-at-1e308": (
        lambda t: [str(_meeting(t, lambda d: d.__setitem__("started_at_ms", 1e308)))],
        "started_at_ms",
    ),
    "webm-cut-to-60%": (lambda t: [str(_cut_webm(t))], "alice.webm: truncated"),
    "model-nowhere": (lambda t: [str(FIXTURE), "--model", str(t / "nowhere")], "nowhere"),
    "model-not-ctranslate2": (
        lambda t: [str(FIXTURE), "--model", str(t)],
        "model.bin",
    ),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_process_refuses_bad_input_in_one_line_and_stores_nothing(
    tmp_path: Path, data: Path, kind: str
) -> None:
    build, named = CASES[kind]
    before = counts(data)
    (tmp_path / "input").mkdir()
    with contextlib.ExitStack() as stack:
        made = build(tmp_path / "input")
        args, env = (made, {}) if isinstance(made, list) else stack.enter_context(made)
        res = cli("process", *args, data_dir=data, check=False, env=env)
    _assert_one_line(res, named)
    assert res.stdout == ""
    assert counts(data) == before
    # No artifact, lock or log either: the refusal came before the run began.
    assert [p.name for p in data.iterdir() if not p.name.startswith("reflector.sqlite3")] == []


def _assert_one_line(res: Any, named: str) -> None:
    assert res.returncode == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:") and named in lines[0], lines[0]
    assert "Traceback" not in res.stderr and "unexpected" not in res.stderr


def test_json_failure_prints_the_error_document(tmp_path: Path, data: Path) -> None:
    before = counts(data)
    res = cli("process", str(tmp_path / "nope"), "--json", data_dir=data, check=False)
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc == {"error": doc["error"], "exit_code": 1} and "nope" in doc["error"]
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1
    assert counts(data) == before
    shown = cli("show", "t-missing", "--json", data_dir=data, check=False)
    assert json.loads(shown.stdout)["exit_code"] == 1


@pytest.mark.parametrize("command", ["process", "show", "runs", "export"])
def test_a_data_dir_that_is_a_file_says_so(tmp_path: Path, command: str) -> None:
    afile = tmp_path / "data"
    afile.write_text("not a directory")
    args = {"process": [str(FIXTURE)], "show": ["t-x"], "runs": [], "export": ["t-x"]}[command]
    res = cli(command, *args, data_dir=afile, check=False)
    _assert_one_line(res, f"{afile}: is a file, not a data directory")
    assert afile.read_text() == "not a directory"


@pytest.mark.parametrize("where", ["missing-folder", "onto-a-directory"])
def test_export_to_a_bad_path_is_one_line(tmp_path: Path, data: Path, where: str) -> None:
    target = tmp_path / "no" / "such" / "out.md" if where == "missing-folder" else tmp_path
    res = cli("export", "t-rec-kept", "-o", str(target), data_dir=data, check=False)
    _assert_one_line(res, str(target))
    assert not (tmp_path / "no").exists()


# --------------------------------------------------------------------------- read-only, disk full


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[Path]:
    """`path` made read-only for real: a read-only bind mount as root (root ignores
    permissions), else the permissions themselves."""
    if os.geteuid() == 0:
        view = path.with_name(path.name + "-ro")
        view.mkdir()
        subprocess.run(["mount", "--bind", str(path), str(view)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
            yield view
        finally:
            subprocess.run(["umount", str(view)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.iterdir()]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield path
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def test_read_only_data_dir_still_reads(
    tmp_path: Path, processed: tuple[Path, dict[str, Any]]
) -> None:
    src, doc = processed
    data = tmp_path / "data"
    shutil.copytree(src, data, ignore=shutil.ignore_patterns("rec-*"))
    with _read_only(data) as ro:
        tid = doc["transcript_id"]
        shown = cli("show", tid, "--json", data_dir=ro, check=False)
        runs = cli("runs", "--json", data_dir=ro, check=False)
        exported = cli("export", tid, "--format", "md", data_dir=ro, check=False)
        refused = cli("process", str(FIXTURE), data_dir=ro, check=False)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["word_count"] == doc["word_count"]
    assert runs.returncode == 0 and json.loads(runs.stdout)[0]["status"] == "ended"
    assert exported.returncode == 0 and exported.stdout.startswith("# ")
    _assert_one_line(refused, "read-only")


def test_disk_full_while_padding_is_one_line_and_a_consistent_error(
    tmp_path: Path, data: Path
) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("mounting a 1 MB tmpfs needs root; CI runs as root")
        pytest.skip("mounting a 1 MB tmpfs needs root")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    # Room for the raw copies (~410 KB), not for the padded FLAC tracks.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(artifacts)], check=True)
    try:
        res = cli(
            "process",
            str(FIXTURE),
            data_dir=data,
            check=False,
            env={"REFLECTOR_STORAGE_URL": str(artifacts)},
        )
    finally:
        subprocess.run(["umount", str(artifacts)], check=True)
    _assert_one_line(res, "pad_track: no space left on device writing")
    assert "LibsndfileError" not in res.stderr
    conn = sqlite3.connect(data / "reflector.sqlite3")
    run = conn.execute("SELECT status, error_stage FROM runs WHERE id != 'r-rec-kept'").fetchone()
    status = conn.execute(
        "SELECT status, error_message FROM transcripts WHERE id != 't-rec-kept'"
    ).fetchone()
    conn.close()
    assert run == ("error", "pad_track")
    assert status[0] == "error" and "no space left on device" in status[1]


# --------------------------------------------------------------------------- `reflector serve`

TOKEN = "catalogue-token-5e8d2a41c9"
WEBHOOK_SECRET = base64.b64encode(b"catalogue-webhook-secret").decode()
BIG = 200 * 1024 * 1024
PRIVATE = "t-" + "rec-private0123"


def _serve(data: Path, token: str | None) -> tuple[subprocess.Popen[str], str]:
    """The real `reflector serve` on a free port, stdout and stderr captured together."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REFLECTOR_API_TOKEN"}
    env |= {"REFLECTOR_DATA_DIR": str(data), "DAILY_WEBHOOK_SECRET": WEBHOOK_SECRET}
    if token:
        env["REFLECTOR_API_TOKEN"] = token
    proc = subprocess.Popen(
        [*REFLECTOR, "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()[0]
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, f"127.0.0.1:{port}"
        assert time.monotonic() < deadline, "serve did not come up"
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    return proc.communicate(timeout=20)[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("served")
    store_finished(data / "reflector.sqlite3", "rec-private0123")
    proc, addr = _serve(data, TOKEN)
    try:
        yield addr, data
    finally:
        _stop(proc)


def _post(addr: str, headers: dict[str, str], chunks: Iterator[bytes]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return raw_post(addr, f"POST /v1/daily/webhook HTTP/1.1\r\nHost: x\r\n{head}\r\n", chunks)[0]


def _chunked(total: int, size: int = 65536) -> Iterator[bytes]:
    piece = f"{size:x}\r\n".encode() + b" " * size + b"\r\n"
    return (piece for _ in range(total // size))


def _signed_nan(addr: str) -> bytes:
    body = b'{"type": "recording.ready-to-download"}'
    sig = sign_daily(WEBHOOK_SECRET, "nan", body)
    headers = {"X-Webhook-Timestamp": "nan", "X-Webhook-Signature": sig}
    return _post(addr, headers | {"Content-Length": str(len(body))}, iter([body]))


AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVE_CASES: dict[str, tuple[Callable[[str], Any], Any]] = {
    "ws-no-token": (lambda a: events_until_closed(a, PRIVATE), [("refused", 403)]),
    "ws-wrong-token": (
        lambda a: events_until_closed(a, PRIVATE, headers={"Authorization": "Bearer nope"}),
        [("refused", 403)],
    ),
    "ws-wrong-query-token": (
        lambda a: events_until_closed(a, PRIVATE, "?access_token=nope"),
        [("refused", 403)],
    ),
    "ws-underscore": (lambda a: events_until_closed(a, "_", headers=AUTH), [("closed", 4404)]),
    "ws-percent": (lambda a: events_until_closed(a, "%", headers=AUTH), [("closed", 4404)]),
    "ws-percent-encoded": (
        lambda a: events_until_closed(a, "t-%25", headers=AUTH),
        [("closed", 4404)],
    ),
    "ws-prefix": (lambda a: events_until_closed(a, PRIVATE[:-1], headers=AUTH), [("closed", 4404)]),
    "ws-10000-char-path": (
        lambda a: events_until_closed(a, "a" * 10_000, headers=AUTH),
        [("refused", 403)],
    ),
    "webhook-200MB-declared": (
        lambda a: _post(a, {"Content-Length": str(BIG)}, (b" " * 65536 for _ in range(3200)))[:12],
        b"HTTP/1.1 413",
    ),
    "webhook-200MB-streamed": (
        lambda a: _post(a, {"Transfer-Encoding": "chunked"}, _chunked(BIG))[:12],
        b"HTTP/1.1 413",
    ),
    "webhook-timestamp-nan": (lambda a: _signed_nan(a)[:12], b"HTTP/1.1 401"),
}


@pytest.mark.parametrize("kind", list(SERVE_CASES))
def test_serve_refuses_before_any_data(served: tuple[str, Path], kind: str) -> None:
    addr, data = served
    attempt, expected = SERVE_CASES[kind]
    before = counts(data)
    assert attempt(addr) == expected
    assert counts(data) == before
    # The right token still reads the transcript afterwards: the refusal hurt nobody.
    good = events_until_closed(addr, PRIVATE, headers=AUTH)
    assert [e["event"] for e in good[:-1]] == ["TRANSCRIPT", "STATUS"]


def test_serve_never_logs_the_token(served: tuple[str, Path]) -> None:
    _, data = served
    proc, addr = _serve(data, TOKEN)
    try:
        by_query = events_until_closed(addr, PRIVATE, f"?access_token={TOKEN}")
        by_header = events_until_closed(addr, PRIVATE, headers=AUTH)
        wrong = events_until_closed(addr, PRIVATE, f"?access_token={TOKEN}x")
    finally:
        output = _stop(proc)
    assert by_query[0]["event"] == by_header[0]["event"] == "TRANSCRIPT"
    assert wrong == [("refused", 403)]
    assert TOKEN not in output and WEBHOOK_SECRET not in output
    assert "access_token=[redacted]" in output  # the access log line is there, cleaned
    assert "REFLECTOR_API_TOKEN is not set" not in output


def test_serve_without_a_token_says_so_and_keeps_events_closed(served: tuple[str, Path]) -> None:
    _, data = served
    proc, addr = _serve(data, None)
    try:
        refused = events_until_closed(addr, PRIVATE, headers=AUTH)
    finally:
        output = _stop(proc)
    assert refused == [("refused", 403)]
    lines = [ln for ln in output.splitlines() if "REFLECTOR_API_TOKEN" in ln]
    assert len(lines) == 1 and "closed" in lines[0]


def test_doctor_says_whether_the_token_is_set_never_what_it_is(tmp_path: Path) -> None:
    unset = cli("doctor", "--json", data_dir=tmp_path, check=False)
    given = cli(
        "doctor", "--json", data_dir=tmp_path, check=False, env={"REFLECTOR_API_TOKEN": TOKEN}
    )
    check = {
        name: next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "api token")
        for name, r in (("unset", unset), ("given", given))
    }
    assert check["unset"]["ok"] is False and check["unset"]["required"] is False
    assert "REFLECTOR_API_TOKEN is not set" in check["unset"]["detail"]
    assert check["given"]["ok"] is True
    assert TOKEN not in given.stdout + given.stderr
