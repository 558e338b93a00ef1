"""Run one stage from a JSON payload: the single entry point every provider's worker calls.

Providers move JSON between processes or machines; this module turns it back into the typed
input, builds the StageContext and calls the stage function.
"""

from __future__ import annotations

from typing import Any, Literal

from reflector_cli.core.config import Settings
from reflector_cli.core.models import AsrOptions
from reflector_cli.core.whisper_models import resolve_model
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.dag import stage
from reflector_cli.stages import heap
from reflector_cli.stages.context import EmitFn, StageContext, _drop
from reflector_cli.storage import open_storage


def asr_options(settings: Settings) -> AsrOptions:
    """The transcription options a run (or a worker warming up) gets from settings; a model
    name resolves here, once, to the local directory every worker then loads."""
    device = asr_device(settings.device)
    return AsrOptions(
        model=str(resolve_model(settings.model)),
        language=settings.language,
        compute_type=settings.compute_type or ("float16" if device == "cuda" else "int8"),
        cpu_threads=settings.cpu_threads,
        beam_size=settings.beam_size,
        batch_size=settings.batch_size or (8 if device == "cuda" else 1),
        device=device,
        vad=settings.vad,
    )


def asr_device(asked: str) -> Literal["cpu", "cuda"]:
    """`auto` is CUDA when CTranslate2 sees a GPU, else CPU."""
    if asked in ("cpu", "cuda"):
        return "cuda" if asked == "cuda" else "cpu"
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def warm_up(asr: AsrOptions, parallel: int = 1) -> None:
    """Load per-process stage state (the DAG's WORKER_WARMUP) before the first task, for
    `parallel` stages running at once on this process's threads."""
    heap.reuse_freed()
    try:
        dag.resolve_hook(dag.WORKER_WARMUP)(asr, parallel)
    finally:
        heap.trim()  # the model load's transients, as run_stage trims after each stage


class InjectedFault(RuntimeError):
    """Raised on purpose by `REFLECTOR_TEST_FAIL=stage:N` to exercise retries end to end."""


def _inject_fault(spec: str | None, name: str, attempt: int) -> None:
    if not spec:
        return
    for item in spec.split(","):
        target, _, count = item.partition(":")
        if target.strip() == name and attempt <= int(count or 1):
            raise InjectedFault(f"{name}: injected failure on attempt {attempt}")


def run_stage(
    name: str,
    payload: dict[str, Any],
    settings: Settings,
    *,
    track: int | None = None,
    attempt: int = 1,
    emit_fn: EmitFn = _drop,
) -> dict[str, Any]:
    """Validate `payload` as the stage's input, run it, return its output as JSON data."""
    heap.reuse_freed()  # every provider's worker comes through here
    st = stage(name)
    inp = st.input_model.model_validate(payload)
    ctx = StageContext(
        storage=open_storage(settings.storage_url, settings.data_dir),
        settings=settings,
        stage=name,
        track=track,
        attempt=attempt,
        emit_fn=emit_fn,
    )
    _inject_fault(settings.test_fail, name, attempt)
    try:
        out = st.fn()(inp, ctx)
    finally:
        heap.trim()  # what the stage freed is kept for reuse until now (heap.reuse_freed)
    return st.output_model.model_validate(out).model_dump(mode="json")
