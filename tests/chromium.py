"""Drive Debian's headless `chromium` for report tests: dump the DOM, take a screenshot, or
open a DevTools (CDP) session to click things and watch every network request."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium() -> str:
    """The browser binary; a missing one is a failure in CI and a skip elsewhere."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed (.ci/run installs it)")
    pytest.skip("chromium is not installed")


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def dump_dom(page: Path) -> str:
    """The DOM after scripts ran, serialised."""
    return _run(["--virtual-time-budget=2000", "--dump-dom", page.resolve().as_uri()]).stdout


def screenshot(page: Path, png: Path, size: str = "1200,2000") -> Path:
    _run([f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri()])
    return png


class Cdp:
    """One page target over the DevTools protocol (websockets' sync client)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        mid = next(self.ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, expression: str, await_promise: bool = False) -> Any:
        res = self.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 20) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"never true in the page: {expression}")

    def click(self, x: float, y: float) -> None:
        """A real mouse press and release at page coordinates."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


@contextlib.contextmanager
def cdp_page(page: Path) -> Iterator[Cdp]:
    """Open `page` with the Network domain enabled from the first request on."""
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0"]
        proc = subprocess.Popen(
            [*cmd, "--window-size=1200,2000", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _devtools_port(proc, Path(profile) / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                target = next(t for t in json.load(r) if t["type"] == "page")
            with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
                cdp = Cdp(ws)
                cdp.call("Network.enable")
                cdp.call("Page.enable")
                cdp.call("Page.navigate", url=page.resolve().as_uri())
                cdp.wait_for("document.readyState === 'complete'")
                yield cdp
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _devtools_port(proc: subprocess.Popen[bytes], port_file: Path) -> int:
    """Chromium writes the port it picked into the profile's DevToolsActivePort file."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"chromium exited early (rc {proc.returncode})")
        text = port_file.read_text() if port_file.exists() else ""
        if text.strip():
            return int(text.split()[0])
        time.sleep(0.05)
    raise AssertionError("chromium never opened its DevTools port")


def requested_urls(cdp: Cdp) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in cdp.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
