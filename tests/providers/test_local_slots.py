"""The local executor's heavy slots with a real worker process: a finished heavy stage's slot
is free for the next one as soon as the scheduler has been handed its end, not a tick later
(every hand-over used to leave the worker idle for up to 0.2 s)."""

from __future__ import annotations

from reflector_cli.core import models as m
from reflector_cli.providers.local import LocalExecutor, StagePool
from reflector_cli.providers.recorder import Recorder
from reflector_cli.providers.scheduler import Completion


def _pad(track: int) -> m.PadTrackIn:
    ref = m.TrackRef(index=track, key="rec-1/missing.wav", source_name="missing.wav",
                     participant_id=f"p{track}")  # fmt: skip
    return m.PadTrackIn(recording_id="rec-1", track=ref)


def test_a_heavy_slot_is_free_once_the_scheduler_was_handed_the_end(rec: Recorder) -> None:
    pool = StagePool(workers=1)
    ex = LocalExecutor(rec.settings, rec, pool)
    try:
        assert ex.submit(("pad_track", 0), _pad(0), 1, 60)
        assert not ex.submit(("pad_track", 1), _pad(1), 1, 60)  # the one slot is taken
        ended: list[Completion] = []
        while not ended:
            ended = [i for i in ex.wait(5) if isinstance(i, Completion)]
        assert ended[0].node == ("pad_track", 0) and ended[0].error  # the file is missing
        # The scheduler records that end, then submits the next ready stage: no wait between.
        assert ex.submit(("pad_track", 1), _pad(1), 1, 60)
    finally:
        ex.close(kill=True)
        pool.close(kill=True)
