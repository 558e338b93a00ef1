"""REST calls the submitter makes to the Hatchet engine while following one fixture run.

Needs a running engine and its env: `eval "$(scripts/hatchet-local env)"`. Starts its own
worker subprocess, counts every REST request of this (submitting) process by endpoint (the
SDK's generated ApiClient is wrapped here; our code is not touched) and prints one JSON object.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hatchet_sdk.clients.rest.api_client import ApiClient  # noqa: E402

from benchmarks.hatchet_overhead import _start_worker, bench_args  # noqa: E402
from reflector_cli.core.config import load_settings  # noqa: E402
from reflector_cli.runs.process import process_recording  # noqa: E402

CALLS: collections.Counter[str] = collections.Counter()
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _count_calls() -> None:
    real = ApiClient.call_api

    def counted(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        path = _UUID.sub("{id}", url.split("?", 1)[0].split("/api/", 1)[-1])
        CALLS[f"{method} /api/{path}"] += 1
        return real(self, method, url, *args, **kwargs)

    ApiClient.call_api = counted  # type: ignore[method-assign]


def main() -> int:
    args = bench_args(__doc__)
    _count_calls()
    with tempfile.TemporaryDirectory(prefix="hatchet-rest-") as tmp:
        base = Path(tmp)
        port = 18000 + os.getpid() % 1000
        worker = _start_worker(base / "data", args.slots, port, base / "w.log")
        try:
            t0 = time.monotonic()
            res = process_recording(
                str(args.fixture), load_settings(data_dir=base / "data"), provider="hatchet"
            )
            wall = time.monotonic() - t0
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    total = sum(CALLS.values())
    print(
        json.dumps(
            {
                "ok": res.ok,
                "run_s": round(wall, 1),
                "rest_calls": total,
                "rest_calls_per_s": round(total / wall, 2),
                "by_endpoint": dict(CALLS.most_common()),
            },
            indent=2,
        )
    )
    return 0 if res.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
