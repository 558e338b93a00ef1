"""The scheduler's shared rules on the real DAG: output slots, the node walk, the outcome rule
(the loop itself runs in tests/cli with the local provider and tests/providers/test_celery)."""

from __future__ import annotations

from typing import Any

from reflector_cli.core import models as m
from reflector_cli.pipeline import dag
from reflector_cli.providers.scheduler import _State, conclude, nodes, put_output


def _recording(n_tracks: int) -> m.RecordingOut:
    tracks = [
        m.TrackRef(index=i, key=f"k{i}", source_name=f"t{i}.wav", participant_id=f"p{i}")
        for i in range(n_tracks)
    ]
    return m.RecordingOut(recording_id="r", tracks=tracks, duration_s=1.0)


def test_per_track_outputs_land_in_their_slot_in_any_order() -> None:
    outputs: dict[str, Any] = {dag.FANOUT_SOURCE: _recording(3)}
    put_output(outputs, "pad_track", 2, "two")
    put_output(outputs, "pad_track", 0, "zero")
    assert outputs["pad_track"] == ["zero", None, "two"]
    put_output(outputs, "merge_transcripts", None, "merged")
    assert outputs["merge_transcripts"] == "merged"


def test_per_track_nodes_appear_once_the_track_count_is_known() -> None:
    before = nodes(None)
    assert all(track is None for _, track in before)
    after = nodes(2)
    per_track = [s.name for s in dag.STAGES if s.per_track]
    assert len(after) == len(before) + 2 * len(per_track)
    assert ("transcribe_track", 1) in after and ("transcribe_track", 2) not in after


def test_a_gathering_stage_waits_for_every_track_of_its_parent() -> None:
    state = _State(outputs={dag.FANOUT_SOURCE: _recording(3)})
    state.done = {(dag.FANOUT_SOURCE, None), ("pad_track", 0)}
    # transcribe_track gathers pad_track: its own track's pad alone is not enough...
    assert "pad_track" in dag.stage("transcribe_track").gathers
    assert not state.parents_finished(("transcribe_track", 0))
    state.done |= {("pad_track", 1), ("pad_track", 2)}
    assert state.parents_finished(("transcribe_track", 0))
    assert state.parents_finished(("transcribe_track", 2))


def test_a_critical_failure_is_the_error_even_after_success_else_success_rules() -> None:
    done = {dag.SUCCESS_STAGE: object()}
    fatal = conclude(("merge_transcripts", "boom"), done, "unfinished")
    assert (fatal.status, fatal.error_stage, fatal.error) == ("error", "merge_transcripts", "boom")
    assert conclude(None, done, "unfinished").status == "ended"
    short = conclude(None, {}, "stopped early")
    assert (short.status, short.error) == ("error", "stopped early")
    assert conclude(None, {}, None).status == "ended"  # the engine says it completed
