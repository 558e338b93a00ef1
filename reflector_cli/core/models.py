"""Pydantic models shared by stages, providers and storage: every stage's input and output.

Outputs carry references (artifact keys) and small data only, so engine payloads stay small
and a replay days later still finds what it needs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """Base for every boundary model: unknown fields are an error, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- pipeline input


class AsrOptions(Model):
    model: str = Field(description="path to a CTranslate2 whisper model directory, or a name")
    language: str = "en"
    compute_type: str = "int8"
    cpu_threads: int = 1
    beam_size: int = 1
    device: Literal["cpu", "cuda"] = "cpu"
    # 1: one track's speech decoded in sequence; more: ≤30 s chunks decoded in batches.
    batch_size: int = 1
    vad: bool = True


class PipelineInput(Model):
    """Everything a run needs; identical input ⇒ identical outputs (the cache key's root)."""

    recording_id: str
    transcript_id: str
    source_kind: Literal["folder", "daily"]
    source: str = Field(description="folder path, or Daily.co recording id")
    asr: AsrOptions
    llm: str = "extractive"
    llm_model: str | None = None
    include_screen_audio: bool = False
    deliver: bool = True
    # Drop words a microphone picked up from another participant (merge_transcripts).
    crosstalk: bool = True


# --------------------------------------------------------------------------- get_recording


class TrackRef(Model):
    index: int
    key: str = Field(description="artifact key of the ingested source track")
    source_name: str = Field(description="file name (folder) or S3 key (Daily) it came from")
    participant_id: str
    name: str | None = None
    offset_s: float = 0.0
    consent: bool = True


class RecordingOut(Model):
    recording_id: str
    room: str | None = None
    started_at_ms: int | None = None
    duration_s: float | None = None
    session_id: str | None = None
    language: str | None = None
    tracks: list[TrackRef]
    warnings: list[str] = []
    # Daily.co: the customer's bucket, and every object of the recording in it (audio and video,
    # used or not), so consent cleanup can remove them all when configured to.
    bucket: str | None = None
    source_keys: list[str] = []


# --------------------------------------------------------------------------- get_participants


class Participant(Model):
    speaker: int
    participant_id: str
    name: str
    user_id: str | None = None
    consent: bool = True
    track_key: str


class ParticipantsOut(Model):
    participants: list[Participant]


# --------------------------------------------------------------------------- per track


class PadTrackOut(Model):
    track: int
    key: str = Field(description="artifact key of the padded, normalised track (FLAC)")
    duration_s: float = Field(description="padded length = offset + track length")
    sample_rate: int
    offset_s: float
    gaps_filled_s: float = 0.0
    levels_key: str | None = Field(
        default=None, description="artifact key of the track's 10 ms level envelope (float32)"
    )


class Word(Model):
    text: str
    start: float
    end: float
    speaker: int
    probability: float | None = Field(default=None, description="whisper's word probability")


class TranscribeOut(Model):
    track: int
    words_key: str
    word_count: int
    speech_s: float = Field(default=0.0, description="audio left after VAD")
    language: str | None = Field(default=None, description="transcribed in (detected if auto)")
    language_probability: float | None = Field(default=None, description="of a detected one")
    phantoms_dropped: int = Field(default=0, description="phantom phrases over silence removed")


# --------------------------------------------------------------------------- whole meeting


class Segment(Model):
    speaker: int
    start: float
    end: float
    text: str


class TranscriptDoc(Model):
    """The merged transcript artifact (`transcript.json`)."""

    words: list[Word]
    segments: list[Segment]


class CrosstalkWord(Model):
    """A word dropped as another participant's speech, with the evidence that decided it."""

    text: str
    start: float
    end: float
    speaker: int
    source: int = Field(description="speaker whose microphone is the source")
    reason: Literal["level", "text", "run"]
    excess_db: float = Field(description="own level over what the others' leak predicts")


class CrosstalkDoc(Model):
    """The words crosstalk suppression removed (artifact `crosstalk.json`)."""

    removed: list[CrosstalkWord]


class MergeOut(Model):
    transcript_key: str
    word_count: int
    speakers: list[int]
    duration_s: float
    # Crosstalk suppression: whether it ran, and words removed per track (by track index).
    crosstalk: bool = False
    crosstalk_removed: list[int] = []
    crosstalk_key: str | None = None
    language: str | None = Field(default=None, description="dominant language of the tracks")


class MixdownOut(Model):
    key: str
    duration_s: float
    tracks_mixed: int
    peak_gain: float = Field(description="the lowest gain the limiter applied (1.0: none)")
    peaks: list[float] = Field(
        default_factory=list,
        description="max |sample| of each of the waveform's equal slices of the mix as encoded",
    )


class WaveformOut(Model):
    peaks: list[float]


class Topic(Model):
    title: str
    summary: str
    start: float
    duration: float
    word_start: int
    word_end: int = Field(description="exclusive")


class TopicsOut(Model):
    topics: list[Topic]


class TitleOut(Model):
    title: str | None


class Decision(Model):
    decision: str
    decided_by: str | None = None


class NextStep(Model):
    task: str
    assigned_to: str | None = None
    deadline: str | None = None


class ActionItems(Model):
    decisions: list[Decision] = []
    next_steps: list[NextStep] = []


class SummaryOut(Model):
    short_summary: str
    long_summary: str
    action_items: ActionItems = ActionItems()


class FinalDoc(Model):
    """Everything finalize commits to SQLite in one transaction (artifact `final.json`)."""

    transcript_id: str
    recording_id: str
    title: str | None
    short_summary: str
    long_summary: str
    action_items: ActionItems
    duration_s: float
    language: str
    participants: list[Participant]
    topics: list[Topic]
    words: list[Word]
    waveform: list[float]
    audio_key: str | None
    # Where and when the meeting happened, for delivery messages (older docs lack them).
    room: str | None = None
    started_at_ms: int | None = None


class FinalizeOut(Model):
    doc_key: str
    status: Literal["ended"] = "ended"
    word_count: int
    topic_count: int


class ConsentOut(Model):
    consent_denied: bool
    deleted: list[str] = []
    failed: list[str] = []
    audio_deleted: bool = False


class DeliveryOut(Model):
    status: Literal["skipped", "delivered", "failed"]
    detail: str = ""
    attempts: int = 0
    status_code: int | None = None
    message_id: int | None = None


# --------------------------------------------------------------------------- stage inputs
# One input model per stage, built by the DAG from the pipeline input and parent outputs.


class LlmOptions(Model):
    backend: str = "extractive"
    model: str | None = None


class GetParticipantsIn(Model):
    pipeline: PipelineInput
    recording: RecordingOut


class PadTrackIn(Model):
    recording_id: str
    track: TrackRef


class TranscribeIn(Model):
    recording_id: str
    asr: AsrOptions
    padded: PadTrackOut
    tracks: list[PadTrackOut] = Field(
        default_factory=list,
        description="every padded track of the recording: their level envelopes show where "
        "this track carries only other talkers' leak (see stages/speech_gate)",
    )


class MergeIn(Model):
    recording_id: str
    tracks: list[TranscribeOut]
    # The padded tracks give crosstalk suppression each track's level at every word.
    padded: list[PadTrackOut] = []
    crosstalk: bool = False


class MixdownIn(Model):
    recording_id: str
    tracks: list[PadTrackOut]


class WaveformIn(Model):
    recording_id: str
    mixdown: MixdownOut


class TopicsIn(Model):
    recording_id: str
    llm: LlmOptions
    merge: MergeOut
    participants: ParticipantsOut


class TitleIn(Model):
    recording_id: str
    llm: LlmOptions
    topics: TopicsOut
    participants: ParticipantsOut


class SummaryIn(Model):
    recording_id: str
    llm: LlmOptions
    merge: MergeOut
    topics: TopicsOut
    participants: ParticipantsOut


class FinalizeIn(Model):
    pipeline: PipelineInput
    recording: RecordingOut
    participants: ParticipantsOut
    merge: MergeOut
    mixdown: MixdownOut
    waveform: WaveformOut
    topics: TopicsOut
    title: TitleOut
    summary: SummaryOut


class ConsentIn(Model):
    recording_id: str
    recording: RecordingOut
    participants: ParticipantsOut
    padded: list[PadTrackOut]
    mixdown: MixdownOut
    finalize: FinalizeOut


class DeliveryIn(Model):
    recording_id: str
    finalize: FinalizeOut
    enabled: bool = True
