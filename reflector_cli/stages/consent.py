"""cleanup_consent: when any participant denied consent, delete every audio artifact we own.

User originals outside the data dir are never touched; the transcript text is kept.
"""

from __future__ import annotations

from reflector_cli.context import StageContext
from reflector_cli.models import ConsentIn, ConsentOut


def audio_keys(inp: ConsentIn) -> list[str]:
    keys = [t.key for t in inp.recording.tracks]
    keys += [p.key for p in inp.padded]
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
    return ConsentOut(consent_denied=True, deleted=deleted, failed=failed, audio_deleted=not failed)
