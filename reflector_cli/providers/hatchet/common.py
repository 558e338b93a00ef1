"""Names, workflow inputs and task listing shared by the Hatchet worker and submitter."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from hatchet_sdk import Hatchet
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from pydantic import BaseModel, ConfigDict

from reflector_cli.core import models as m
from reflector_cli.pipeline import dag

PIPELINE_WF = "reflector-pipeline"
TRACK_WF = "reflector-track"
FANOUT = "tracks"  # the task between get_recording and the stages needing per-track outputs
SUBMITTED = "submitted"  # run status while nobody follows it (--no-wait)
RUN_KEY = "reflector_run"  # additional-metadata key tying every task of a run together
# Time a task may wait for a free worker: long, so a restarted worker still picks it up.
SCHEDULE_TIMEOUT = timedelta(hours=12)
POLL_S = 0.2  # how often the follower forwards streamed progress (no REST call)
# The follower asks the engine (status + task listing) when the run's event stream says a task
# changed, at most every MIN_SYNC_S, and otherwise every RECONCILE_S in case an event was lost.
MIN_SYNC_S = 0.5
RECONCILE_S = 3.0
# How long a terminal task listing may disagree with the core run details before the core wins.
LISTING_LAG_S = 30.0

log = logging.getLogger("reflector.hatchet")


class RunInput(m.Model):
    """Workflow input: the pipeline input plus what the engine needs to size timeouts."""

    pipeline: m.PipelineInput
    run_id: str
    audio_s: float | None = None
    # Checkpoints of earlier runs the submitter matched (node key -> output): returned as is.
    reused: dict[str, dict[str, Any]] = {}


def node_key(name: str, track: int | None) -> str:
    return name if track is None else f"{name}#{track}"


class TrackInput(m.Model):
    """Child workflow input: one track, with the outputs of its non-per-track ancestors and,
    as lists by track, those of earlier fan-outs' per-track stages."""

    pipeline: m.PipelineInput
    run_id: str
    audio_s: float | None = None
    track: int
    upstream: dict[str, dict[str, Any] | list[dict[str, Any]]]
    reused: dict[str, dict[str, Any]] = {}


class StageFailed(BaseModel):
    """What a non-critical stage's task returns once its last attempt failed.

    The engine cancels every descendant of a FAILED task; a non-critical stage must not take
    its children down with it (critical=False), so its task completes with this marker, and
    the submitter records the stage as failed.
    """

    model_config = ConfigDict(extra="forbid")

    stage_failed: str


def failed_marker(output: Any) -> str | None:
    """The error a task output carries when it is a StageFailed marker, else None."""
    if isinstance(output, StageFailed):
        return output.stage_failed
    if isinstance(output, dict) and set(output) == {"stage_failed"}:
        return str(output["stage_failed"])
    return None


class FanoutOut(BaseModel):
    """Per-track stage outputs (JSON), each list ordered by track index."""

    outputs: dict[str, list[dict[str, Any]]]


def client() -> Hatchet:
    """A client configured from HATCHET_CLIENT_* (built lazily: never at import time)."""
    return Hatchet()


PER_TRACK = tuple(s for s in dag.STAGES if s.per_track)
TOP = tuple(s for s in dag.STAGES if not s.per_track)
PER_TRACK_NAMES = frozenset(s.name for s in PER_TRACK)


def _layers() -> tuple[tuple[dag.Stage, ...], ...]:
    """Per-track stages grouped into fan-outs: a child run holds one track's stages, so a stage
    that gathers every track's output of another runs in a later fan-out than that one."""
    layer: dict[str, int] = {}
    for s in PER_TRACK:
        layer[s.name] = max(
            [layer[p] + (p in s.gathers) for p in s.parents if p in PER_TRACK_NAMES] or [0]
        )
    return tuple(
        tuple(s for s in PER_TRACK if layer[s.name] == k) for k in range(max(layer.values()) + 1)
    )


LAYERS = _layers()
# Fan-out k runs one child of TRACK_WFS[k] per track; the first keeps the original names.
FANOUTS = tuple(FANOUT if k == 0 else f"{FANOUT}-{k + 1}" for k in range(len(LAYERS)))
TRACK_WFS = tuple(TRACK_WF if k == 0 else f"{TRACK_WF}-{k + 1}" for k in range(len(LAYERS)))
# The fan-out task that returns each per-track stage's outputs.
FANOUT_OF = {s.name: FANOUTS[k] for k, layer in enumerate(LAYERS) for s in layer}


def fanout_parents(k: int) -> tuple[str, ...]:
    """What fan-out k waits for: the fan-out source, the non-per-track outputs its stages read,
    and the fan-out before it (whose per-track outputs its stages may gather)."""
    top = [p for s in LAYERS[k] for p in s.parents if p not in PER_TRACK_NAMES]
    before = [FANOUTS[k - 1]] if k > 0 else []
    return tuple(dict.fromkeys([dag.FANOUT_SOURCE, *top, *before]))


def child_parents(s: dag.Stage) -> tuple[str, ...]:
    """A per-track stage's parents inside its own child workflow (engine parents there); its
    per-track parents from an earlier fan-out arrive as every track's outputs instead."""
    return tuple(p for p in s.parents if FANOUT_OF.get(p) == FANOUT_OF[s.name])


ORDER = {s.name: i for i, s in enumerate(dag.STAGES)}
TERMINAL = {V1TaskStatus.COMPLETED, V1TaskStatus.FAILED, V1TaskStatus.CANCELLED}


# Lower bound for listing a run's tasks (the list API needs a window): slack for clock skew.
LISTING_SLACK = timedelta(minutes=5)


def listing_since(run: dict[str, Any]) -> datetime:
    """Where to start listing the tasks of stored run `run`."""
    return datetime.fromisoformat(str(run["created_at"]).replace("Z", "+00:00")) - LISTING_SLACK


def list_tasks(hatchet: Hatchet, run_id: str, since: datetime) -> list[Any]:
    """Every task (pipeline and track runs) tagged with our run id."""
    res = hatchet.runs.list(
        since=since, only_tasks=True, additional_metadata={RUN_KEY: run_id}, limit=1000
    )
    return list(res.rows or [])


def task_name(row: Any) -> str:
    return str(row.action_id or row.display_name or "").rsplit(":", 1)[-1]


def task_timings(run_id: str, since: datetime, hatchet: Hatchet | None = None) -> list[dict]:
    """Engine timestamps of a run's tasks (for overhead measurements)."""
    out = []
    for r in list_tasks(hatchet or client(), run_id, since):
        meta = r.additional_metadata or {}
        out.append(
            {
                "task": task_name(r),
                "track": int(meta["track"]) if "track" in meta else None,
                "status": r.status.value,
                "retry_count": r.retry_count or 0,
                "created_at": r.created_at,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
            }
        )
    return out
