"""Issue 12's bars, measured: how long the real CLI takes to refuse each unbounded offset (and a
20 MB manifest), and how much `reflector serve` grows while refusing unsigned 200 MB bodies.

    .venv/bin/python benchmarks/bad_input.py [--mb 200] [--concurrent 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.rss import tree_rss  # noqa: E402

FIXTURE = ROOT / "fixtures" / "meeting"
CLI = [sys.executable, "-m", "reflector_cli.cli"]
REC_MS = 1732870800000


def _manifest_case(
    tmp: Path, name: str, text_edit: tuple[str, str] | None, room_mb: int = 0
) -> Path:
    folder = tmp / name
    shutil.copytree(FIXTURE, folder)
    mpath = folder / "recording.json"
    text = mpath.read_text()
    if text_edit:
        text = text.replace(text_edit[0], text_edit[1], 1)
    if room_mb:
        doc = json.loads(text)
        doc["room"] = "x" * (room_mb * 1024 * 1024)
        text = json.dumps(doc)
    mpath.write_text(text)
    return folder


def refusal_times(tmp: Path) -> list[tuple[str, float, int, str]]:
    late = REC_MS + 3 * 365 * 86400 * 1000
    daily = tmp / "daily-late"
    daily.mkdir()
    shutil.copy(FIXTURE / "alice.webm", daily / f"{REC_MS}-alice-cam-audio-{late}.webm")
    cases = {
        "offset 1e9": _manifest_case(tmp, "1e9", ('"offset_s": 6.0', '"offset_s": 1e9')),
        "offset Infinity": _manifest_case(tmp, "inf", ('"offset_s": 6.0', '"offset_s": Infinity')),
        "offset 1e308": _manifest_case(tmp, "1e308", ('"offset_s": 6.0', '"offset_s": 1e308')),
        "Daily name 3 years late": daily,
        "20 MB manifest": _manifest_case(tmp, "huge", None, room_mb=20),
    }
    rows = []
    for label, folder in cases.items():
        data = tmp / f"data-{folder.name}"
        t0 = time.perf_counter()
        res = subprocess.run(
            [*CLI, "process", str(folder), "--data-dir", str(data)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        took = time.perf_counter() - t0
        stored = (data / "reflector.sqlite3").exists()
        rows.append(
            (label, took, res.returncode, res.stderr.strip() + (" [STORED]" if stored else ""))
        )
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _send(port: int, total: int, chunked: bool, sent: list[int]) -> None:
    head = "POST /v1/daily/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    piece = b" " * 65536
    if chunked:
        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for _ in range(total // 65536):
                sock.sendall(piece)
                sent[0] += len(piece)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sock.recv(4096)


def webhook_rss(tmp: Path, mb: int, concurrent: int) -> list[tuple[str, int, int, int]]:
    port = _free_port()
    env = {**os.environ, "REFLECTOR_DATA_DIR": str(tmp / "serve"), "REFLECTOR_API_TOKEN": "t"}
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        rows = []
        for label, chunked in (("Content-Length", False), ("chunked", True)):
            base = tree_rss(proc.pid)
            sent = [0]
            threads = [
                threading.Thread(target=_send, args=(port, mb << 20, chunked, sent))
                for _ in range(concurrent)
            ]
            peak = base
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                peak = max(peak, tree_rss(proc.pid))
                time.sleep(0.02)
            rows.append((f"{concurrent} x {mb} MB unsigned, {label}", base, peak, sent[0]))
        return rows
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--concurrent", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reflector-bad-") as d:
        tmp = Path(d)
        print("refusal times (real CLI, incl. ~1-3 s interpreter start):")
        for label, took, rc, line in refusal_times(tmp):
            print(f"  {label:26s} {took:5.2f} s  exit {rc}  {line}")
        print("serve RSS while refusing webhook bodies:")
        for label, base, peak, sent in webhook_rss(tmp, args.mb, args.concurrent):
            grow = (peak - base) / 2**20
            print(
                f"  {label:40s} base {base / 2**20:6.1f} MB  peak {peak / 2**20:6.1f} MB  "
                f"growth {grow:5.1f} MB  client got {sent / 2**20:6.1f} MB out before the cut"
            )


if __name__ == "__main__":
    main()
