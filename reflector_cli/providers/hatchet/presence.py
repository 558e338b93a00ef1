"""Who is there to run a submitted run: workers announce their storage, submitters register the
workflows themselves and wait (visibly) for a worker whose storage matches their own.
"""

from __future__ import annotations

import signal
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hatchet_sdk import Hatchet

from reflector_cli.core import lifeline
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.providers.hatchet.common import PIPELINE_WF

# Worker label holding the storage the worker reads and writes artifacts in.
STORAGE_LABEL = "reflector_storage"
POLL_WORKERS_S = 1.0


def storage_id(settings: Settings) -> str:
    """What a worker and a submitter must agree on: the storage URL, else the data dir."""
    return settings.storage_url or str(Path(settings.data_dir).resolve())


def start_worker(
    hatchet: Hatchet, name: str, slots: int, workflows: list[Any], s: Settings
) -> None:
    """Start a worker announcing its storage (blocks). Its listener child dies with it; SIGTERM,
    SIGINT and SIGHUP start the SDK's graceful stop, bounded in time (lifeline.bounded_stop)."""
    with warnings.catch_warnings():  # dict labels: the only form Worker() accepts in this SDK
        warnings.simplefilter("ignore", DeprecationWarning)
        worker = hatchet.worker(
            name, slots=slots, workflows=workflows, labels={STORAGE_LABEL: storage_id(s)}
        )
    lifeline.bind_spawned_children()  # the SDK's listener process ends with this one
    # The SDK's SIGTERM handler: pause, drain, stop the listener.
    lifeline.bound_stop_signals((signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
    worker.start()


def register_workflows(hatchet: Hatchet, workflows: list[Any]) -> None:
    """Put the workflow definitions on the engine, so a run is accepted (and queued) even
    before any worker has registered them."""
    admin = hatchet._client.admin  # noqa: SLF001 - the SDK registers only from a Worker object
    for wf in workflows:
        admin.put_workflow(wf.to_proto())


def _ours(hatchet: Hatchet, w: Any) -> bool:
    """A live worker of this namespace that runs our pipeline."""
    ns = hatchet.config.namespace or ""
    status = getattr(w.status, "value", w.status)
    if str(status).upper() != "ACTIVE" or not str(w.name).startswith(ns):
        return False
    actions = w.actions or []
    return not actions or any(a.split(":", 1)[0] == f"{ns}{PIPELINE_WF}" for a in actions)


def live_storages(hatchet: Hatchet) -> list[str | None]:
    """The storage each live worker of our namespace announced (None: it announced none)."""
    out: list[str | None] = []
    for w in hatchet.workers.list().rows or []:
        if _ours(hatchet, w):
            labels = {lb.key: lb.value for lb in w.labels or []}
            out.append(labels.get(STORAGE_LABEL))
    return out


def check_storage(mine: str, theirs: list[str | None]) -> None:
    for other in theirs:
        if other is not None and other != mine:
            raise UserError(
                f"worker storage {other} differs from this CLI's {mine}: set "
                "REFLECTOR_DATA_DIR or REFLECTOR_STORAGE_URL the same on both"
            )


def ready_for_run(
    hatchet: Hatchet, settings: Settings, workflows: list[Any], *, wait: bool
) -> None:
    """Register the workflows (a run is then accepted with no worker yet); then wait for a
    worker sharing our storage, or (`wait` False: --no-wait) check the ones already there."""
    register_workflows(hatchet, workflows)
    if wait:
        wait_for_worker(hatchet, settings, settings.wait_for_worker_s, _say)
    else:
        check_storage(storage_id(settings), live_storages(hatchet))


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def wait_for_worker(
    hatchet: Hatchet, settings: Settings, wait_s: float, say: Callable[[str], None]
) -> None:
    """Return once a worker of our namespace is live and shares our storage; say once that
    we are waiting. UserError after `wait_s` seconds, or on a storage mismatch."""
    ns = hatchet.config.namespace or "(none)"
    engine = hatchet.config.host_port
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        theirs = live_storages(hatchet)
        if theirs:
            check_storage(storage_id(settings), theirs)
            return
        if time.monotonic() >= deadline:
            raise UserError(
                f"no worker in namespace {ns} on {engine} after {wait_s:g} s: start "
                "`reflector worker hatchet` with the same HATCHET_CLIENT_NAMESPACE, or wait "
                "longer with --wait-for-worker SECONDS"
            )
        if not said:
            say(
                f"waiting for a worker in namespace {ns} on {engine} "
                "(Ctrl-C to stop; --wait-for-worker SECONDS)"
            )
            said = True
        time.sleep(POLL_WORKERS_S)
