"""The pipeline declared once, as data: stage names, functions, parents, fan-out, retries (a
`RetryPolicy` per stage), timeouts, the fan-out source and the success rule.

Every provider (local, Hatchet, Celery) reads this declaration and nothing else to know what
to run; stage functions are referenced by dotted path so importing the DAG stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.retry import RetryPolicy

# Outputs of finished stages: per-track stages map to a list ordered by track index.
Outputs = Mapping[str, Any]
BuildFn = Callable[[m.PipelineInput, Outputs, int | None], BaseModel]


@dataclass(frozen=True)
class Stage:
    name: str
    fn_path: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    parents: tuple[str, ...]
    build: BuildFn
    per_track: bool = False
    retry: RetryPolicy = RetryPolicy()
    timeout_base_s: float = 60.0
    timeout_per_audio_min_s: float = 0.0
    critical: bool = True
    # Bump when behaviour that lives in data (prompts, thresholds) changes without code changes.
    data_version: int = 1
    priority: int = 0
    # Scheduling hint: cheap or I/O-bound, so a local provider may run it on a thread instead
    # of a worker process (no process hop, no model load). Heavy audio/ASR stages are not light.
    light: bool = False
    tags: frozenset[str] = field(default_factory=frozenset)
    # Per-track parents whose outputs for every track this per-track stage reads (not only its
    # own track's): it waits until all of them are done.
    gathers: tuple[str, ...] = ()
    # Its output's `tracks` decide how many nodes each per-track stage has (exactly one stage).
    fans_out: bool = False
    # A run succeeded once this stage's output exists: failures of later non-critical stages
    # do not undo that (exactly one stage).
    marks_success: bool = False

    @property
    def retries(self) -> int:
        return self.retry.retries

    def retry_policy(self, settings: Settings) -> RetryPolicy:
        return self.retry.resolved(settings)

    def fn(self) -> Callable[[Any, Any], BaseModel]:
        return _resolve(self.fn_path)

    def timeout_s(
        self, audio_s: float | None, overrides: Mapping[str, float] | None = None
    ) -> float:
        """Seconds one attempt may take; `overrides` (stage -> seconds, from settings) wins."""
        if overrides and self.name in overrides:
            return overrides[self.name]
        minutes = (audio_s or 0.0) / 60.0
        return self.timeout_base_s + self.timeout_per_audio_min_s * minutes


@cache
def _resolve(path: str) -> Callable[[Any, Any], BaseModel]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def resolve_hook(path: str) -> Callable[..., Any]:
    return _resolve(path)


def _one(outs: Outputs, name: str) -> Any:
    return outs[name]


def _rid(p: m.PipelineInput) -> str:
    return p.recording_id


def _llm(p: m.PipelineInput) -> m.LlmOptions:
    return m.LlmOptions(backend=p.llm, model=p.llm_model)


def _track(outs: Outputs, name: str, track: int | None) -> Any:
    if track is None:
        raise ValueError(f"{name}: per-track input without a track index")
    return outs[name][track]


STAGES: tuple[Stage, ...] = (
    Stage(
        "get_recording",
        "reflector_cli.stages.source:get_recording",
        m.PipelineInput,
        m.RecordingOut,
        (),
        lambda p, o, t: p,
        retry=RetryPolicy(max_attempts=4),
        timeout_base_s=600,
        light=True,
        fans_out=True,
    ),
    Stage(
        "get_participants",
        "reflector_cli.stages.source:get_participants",
        m.GetParticipantsIn,
        m.ParticipantsOut,
        ("get_recording",),
        lambda p, o, t: m.GetParticipantsIn(pipeline=p, recording=_one(o, "get_recording")),
        retry=RetryPolicy(max_attempts=4),
        light=True,
    ),
    Stage(
        "pad_track",
        "reflector_cli.stages.audio:pad_track",
        m.PadTrackIn,
        m.PadTrackOut,
        ("get_recording",),
        lambda p, o, t: m.PadTrackIn(
            recording_id=_rid(p), track=_one(o, "get_recording").tracks[t]
        ),
        per_track=True,
        timeout_base_s=120,
        timeout_per_audio_min_s=6,
        priority=1,
    ),
    Stage(
        "transcribe_track",
        "reflector_cli.stages.asr:transcribe_track",
        m.TranscribeIn,
        m.TranscribeOut,
        ("pad_track",),
        lambda p, o, t: m.TranscribeIn(
            recording_id=_rid(p),
            asr=p.asr,
            padded=_track(o, "pad_track", t),
            # With crosstalk suppression off every word a microphone picked up is wanted.
            tracks=list(o["pad_track"]) if p.crosstalk else [],
        ),
        per_track=True,
        gathers=("pad_track",),
        timeout_base_s=300,
        timeout_per_audio_min_s=60,
        priority=2,
    ),
    Stage(
        "merge_transcripts",
        "reflector_cli.stages.transcript:merge_transcripts",
        m.MergeIn,
        m.MergeOut,
        ("transcribe_track", "pad_track"),
        lambda p, o, t: m.MergeIn(
            recording_id=_rid(p),
            tracks=list(o["transcribe_track"]),
            padded=list(o["pad_track"]),
            crosstalk=p.crosstalk,
        ),
        priority=2,
        # Crosstalk suppression reads every padded track's level envelope (FLAC decode).
        timeout_per_audio_min_s=2,
        light=True,
    ),
    Stage(
        "mixdown_tracks",
        "reflector_cli.stages.audio:mixdown_tracks",
        m.MixdownIn,
        m.MixdownOut,
        ("pad_track",),
        lambda p, o, t: m.MixdownIn(recording_id=_rid(p), tracks=list(o["pad_track"])),
        timeout_base_s=120,
        timeout_per_audio_min_s=6,
    ),
    Stage(
        "generate_waveform",
        "reflector_cli.stages.audio:generate_waveform",
        m.WaveformIn,
        m.WaveformOut,
        ("mixdown_tracks",),
        lambda p, o, t: m.WaveformIn(recording_id=_rid(p), mixdown=_one(o, "mixdown_tracks")),
        timeout_base_s=120,
        timeout_per_audio_min_s=3,
    ),
    Stage(
        "detect_topics",
        "reflector_cli.stages.llm:detect_topics",
        m.TopicsIn,
        m.TopicsOut,
        ("merge_transcripts", "get_participants"),
        lambda p, o, t: m.TopicsIn(
            recording_id=_rid(p),
            llm=_llm(p),
            merge=_one(o, "merge_transcripts"),
            participants=_one(o, "get_participants"),
        ),
        timeout_base_s=600,
        priority=2,
        light=True,
    ),
    Stage(
        "generate_title",
        "reflector_cli.stages.llm:generate_title",
        m.TitleIn,
        m.TitleOut,
        ("detect_topics", "get_participants"),
        lambda p, o, t: m.TitleIn(
            recording_id=_rid(p),
            llm=_llm(p),
            topics=_one(o, "detect_topics"),
            participants=_one(o, "get_participants"),
        ),
        timeout_base_s=300,
        light=True,
    ),
    Stage(
        "generate_summary",
        "reflector_cli.stages.llm:generate_summary",
        m.SummaryIn,
        m.SummaryOut,
        ("merge_transcripts", "detect_topics", "get_participants"),
        lambda p, o, t: m.SummaryIn(
            recording_id=_rid(p),
            llm=_llm(p),
            merge=_one(o, "merge_transcripts"),
            topics=_one(o, "detect_topics"),
            participants=_one(o, "get_participants"),
        ),
        timeout_base_s=600,
        light=True,
    ),
    Stage(
        "finalize",
        "reflector_cli.stages.finalize:finalize",
        m.FinalizeIn,
        m.FinalizeOut,
        (
            "get_recording",
            "get_participants",
            "merge_transcripts",
            "mixdown_tracks",
            "generate_waveform",
            "detect_topics",
            "generate_title",
            "generate_summary",
        ),
        lambda p, o, t: m.FinalizeIn(
            pipeline=p,
            recording=_one(o, "get_recording"),
            participants=_one(o, "get_participants"),
            merge=_one(o, "merge_transcripts"),
            mixdown=_one(o, "mixdown_tracks"),
            waveform=_one(o, "generate_waveform"),
            topics=_one(o, "detect_topics"),
            title=_one(o, "generate_title"),
            summary=_one(o, "generate_summary"),
        ),
        light=True,
        marks_success=True,
    ),
    Stage(
        "cleanup_consent",
        "reflector_cli.stages.consent:cleanup_consent",
        m.ConsentIn,
        m.ConsentOut,
        (
            "get_recording",
            "get_participants",
            "pad_track",
            "mixdown_tracks",
            "generate_waveform",
            "finalize",
        ),
        lambda p, o, t: m.ConsentIn(
            recording_id=_rid(p),
            recording=_one(o, "get_recording"),
            participants=_one(o, "get_participants"),
            padded=list(o["pad_track"]),
            mixdown=_one(o, "mixdown_tracks"),
            finalize=_one(o, "finalize"),
        ),
        critical=False,
        light=True,
    ),
    Stage(
        "post_zulip",
        "reflector_cli.stages.deliver:post_zulip",
        m.DeliveryIn,
        m.DeliveryOut,
        ("finalize", "cleanup_consent"),
        lambda p, o, t: m.DeliveryIn(
            recording_id=_rid(p), finalize=_one(o, "finalize"), enabled=p.deliver
        ),
        critical=False,
        tags=frozenset({"deliver"}),
        light=True,
    ),
    Stage(
        "send_webhook",
        "reflector_cli.stages.deliver:send_webhook",
        m.DeliveryIn,
        m.DeliveryOut,
        ("finalize", "cleanup_consent"),
        lambda p, o, t: m.DeliveryIn(
            recording_id=_rid(p), finalize=_one(o, "finalize"), enabled=p.deliver
        ),
        critical=False,
        tags=frozenset({"deliver"}),
        light=True,
    ),
)

# What a worker process loads once before its first task (heavy, per-process state).
WORKER_WARMUP = "reflector_cli.stages.asr:warm"

BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


def _the_one(flag: str) -> Stage:
    found = [s for s in STAGES if getattr(s, flag)]
    if len(found) != 1:
        raise ValueError(f"exactly one stage must declare {flag}; found {len(found)}")
    return found[0]


FANOUT_SOURCE: str = _the_one("fans_out").name
SUCCESS_STAGE: str = _the_one("marks_success").name


def track_count(outputs: Outputs) -> int | None:
    """How many tracks the per-track stages fan out over, once the fan-out source is done."""
    out = outputs.get(FANOUT_SOURCE)
    return None if out is None else len(out.tracks)


def succeeded(outputs: Outputs) -> bool:
    """The success rule: the success stage's output exists."""
    return outputs.get(SUCCESS_STAGE) is not None


def stage(name: str) -> Stage:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}") from None


def descendants(name: str) -> set[str]:
    """Stages downstream of `name` (not including it)."""
    out: set[str] = set()
    frontier = [name]
    while frontier:
        cur = frontier.pop()
        for s in STAGES:
            if cur in s.parents and s.name not in out:
                out.add(s.name)
                frontier.append(s.name)
    return out


def ancestors(name: str) -> set[str]:
    out: set[str] = set()
    frontier = list(stage(name).parents)
    while frontier:
        cur = frontier.pop()
        if cur not in out:
            out.add(cur)
            frontier.extend(stage(cur).parents)
    return out


def validate(stages: Sequence[Stage] = STAGES) -> None:
    """Parents exist and come first (the tuple is a topological order); a stage gathers only
    per-track parents, and only as a per-track stage itself."""
    seen: dict[str, Stage] = {}
    for s in stages:
        missing = [p for p in s.parents if p not in seen]
        if missing:
            raise ValueError(f"stage {s.name}: parents {missing} are not declared before it")
        odd = [g for g in s.gathers if g not in s.parents or not seen[g].per_track]
        if odd or (s.gathers and not s.per_track):
            raise ValueError(f"stage {s.name}: gathers {list(s.gathers)} must be per-track parents")
        seen[s.name] = s


validate()
