"""cleanup_consent: when any participant denied consent, delete every audio artifact we own.

User originals outside the data dir are never touched (a Daily.co bucket only when
REFLECTOR_DAILY_DELETE_FROM_BUCKET is on); the transcript text is kept.
"""

from __future__ import annotations

from reflector_cli.core.models import ConsentIn, ConsentOut
from reflector_cli.stages.context import StageContext


def audio_keys(inp: ConsentIn) -> list[str]:
    keys = [t.key for t in inp.recording.tracks]
    keys += [p.key for p in inp.padded]
    # Not audio, but drawn from it (10 ms levels show when each person spoke).
    keys += [p.levels_key for p in inp.padded if p.levels_key]
    keys.append(inp.mixdown.key)
    return keys


def cleanup_consent(inp: ConsentIn, ctx: StageContext) -> ConsentOut:
    if all(p.consent for p in inp.participants.participants):
        return ConsentOut(consent_denied=False)
    deleted: list[str] = []
    failed: list[str] = []
    for key in audio_keys(inp):
        try:
            ctx.storage.delete(key)
        except OSError as exc:
            failed.append(f"{key}: {exc.strerror or exc}")
            continue
        if ctx.storage.exists(key):
            failed.append(f"{key}: still present after delete")
        else:
            deleted.append(key)
    # Daily.co: the customer's own bucket is touched only when they configured us to.
    if inp.recording.bucket and ctx.settings.daily_delete_from_bucket:
        from reflector_cli.sources import s3

        client = s3.s3_client(ctx.settings)
        done, bad = s3.delete_objects(client, inp.recording.bucket, inp.recording.source_keys)
        deleted += done
        failed += bad
    return ConsentOut(consent_denied=True, deleted=deleted, failed=failed, audio_deleted=not failed)
