"""A tiny Hugging Face Hub on 127.0.0.1: the endpoints huggingface_hub's snapshot_download uses.

It serves one directory's files as every repository (repo info, tree listing, resolve with the
ETag / X-Repo-Commit / Content-Length headers), so the real client downloads real bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id


class FakeHub:
    def __init__(self, files: Path) -> None:
        self.files = {p.name: p for p in sorted(files.iterdir()) if p.is_file()}
        self.requests: list[str] = []
        self.bytes_served = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                hub._handle(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = h.path.split("?", 1)[0]
        self.requests.append(f"{h.command} {path}")
        if m := re.fullmatch(r"/api/models/(.+)/revision/([^/]+)", path):
            siblings = [{"rfilename": n} for n in self.files]
            self._json(h, {"id": m[1], "sha": COMMIT, "siblings": siblings}, body)
        elif re.fullmatch(r"/api/models/(.+)/tree/([^/]+)", path):
            tree = [
                {
                    "type": "file",
                    "path": n,
                    "size": p.stat().st_size,
                    "oid": _git_oid(p.read_bytes()),
                }
                for n, p in self.files.items()
            ]
            self._json(h, tree, body)
        elif (m := re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", path)) and m[3] in self.files:
            data = self.files[m[3]].read_bytes()
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(data)))
            h.send_header("ETag", f'"{_git_oid(data)}"')
            h.send_header("X-Repo-Commit", COMMIT)
            h.end_headers()
            if body:
                h.wfile.write(data)
                self.bytes_served += len(data)
        else:
            h.send_response(404)
            h.send_header("X-Error-Code", "EntryNotFound")
            h.send_header("Content-Length", "0")
            h.end_headers()

    @staticmethod
    def _json(h: BaseHTTPRequestHandler, doc: object, body: bool) -> None:
        data = json.dumps(doc).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)
