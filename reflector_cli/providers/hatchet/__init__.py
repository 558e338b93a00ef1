"""The Hatchet provider: the DAG from dag.py as Hatchet workflows and a worker (`workflows`), a
submitter that follows the run (`follow`, state in `mirror`), engine replay (`replay`), runs
nobody follows live (`runs`: --no-wait submit and sync) and the doctor checks (`doctor`).

`reflector-pipeline` holds the non-per-track stages; a `tracks` task spawns one
`reflector-track` child run per track (the per-track stages), and a `tracks-2` task one
`reflector-track-2` child per track for the per-track stages that gather every track's output
of the first (transcription reads every track's level envelope). This package is the only place
that imports hatchet_sdk; task bodies only rebuild stage inputs and call execute.run_stage.
"""

from reflector_cli.providers.hatchet.common import (
    FANOUT_OF,
    FANOUTS,
    SUBMITTED,
    child_parents,
    client,
    fanout_parents,
    task_timings,
)
from reflector_cli.providers.hatchet.doctor import decode_token, hatchet_checks
from reflector_cli.providers.hatchet.follow import HatchetProvider
from reflector_cli.providers.hatchet.replay import replay_engine_run
from reflector_cli.providers.hatchet.runs import submit_run, sync_run
from reflector_cli.providers.hatchet.workflows import build_workflows, engine_slots, run_worker

__all__ = [
    "FANOUT_OF",
    "FANOUTS",
    "SUBMITTED",
    "HatchetProvider",
    "build_workflows",
    "child_parents",
    "client",
    "decode_token",
    "fanout_parents",
    "engine_slots",
    "hatchet_checks",
    "replay_engine_run",
    "run_worker",
    "submit_run",
    "sync_run",
    "task_timings",
]
