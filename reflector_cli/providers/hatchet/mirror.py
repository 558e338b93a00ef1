"""What the submitter has mirrored of an engine run so far: per-node progress, outputs, failures."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from reflector_cli.providers.recorder import Done, Failed, Recorder, Started
from reflector_cli.providers.scheduler import put_output


class Node:
    """What has been recorded for one (stage, track)."""

    def __init__(self) -> None:
        self.logged = 0  # events recorded: start1, fail1, start2, ... (see _target)
        self.final = False


class Mirror:
    """What has been recorded so far for a run: per-node progress, outputs, failures."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[str, int | None], Node] = {}
        self.outputs: dict[str, Any] = {}
        self.failures: list[tuple[str, str]] = []
        self.run_over = False  # the engine run is terminal: a FAILED task won't be retried
        self.disagree_since: float | None = None  # listing terminal, core tables not (yet)
        self.replay_gap_since: float | None = None  # run terminal, a replayed task not rerun
        self.streamed = 0  # stage records taken from the workers' stream (see `take`)

    def settle(self, name: str, track: int | None, out: BaseModel) -> None:
        """`out` is the node's final output (done or reused): nothing more to mirror for it."""
        put_output(self.outputs, name, track, out)
        self.nodes.setdefault((name, track), Node()).final = True

    def output(self, name: str, track: int | None) -> BaseModel:
        out = self.outputs[name]
        return out if track is None else out[track]

    def take(self, log: Recorder, rec: Started | Failed | Done) -> None:
        """Apply a record a worker streamed. One for an attempt whose start is not recorded
        (its Started line was missed) is left to the task listing, which knows the attempt."""
        node = self.nodes.setdefault((rec.stage, rec.track), Node())
        if node.final:
            return
        if isinstance(rec, Started):
            self.streamed += 1
            log.apply(rec)
            node.logged = max(node.logged, 2 * rec.attempt - 1)
            return
        if log.attempts(rec.stage, rec.track) < rec.attempt:
            return
        self.streamed += 1
        if isinstance(rec, Done):
            self.settle(rec.stage, rec.track, log.apply(rec))
            return
        log.apply(rec)
        if rec.final:
            self.failures.append((rec.stage, rec.error))
            node.final = True
        else:
            node.logged = max(node.logged, 2 * rec.attempt)
