"""One short line per stage output for `runs show`: what the stage found, not its payload."""

from __future__ import annotations

import json


def stage_details(stage: str, output: str | None) -> str:
    """E.g. merge_transcripts -> "280 words; crosstalk removed: 0/12/3" (per track)."""
    if not output:
        return ""
    data = json.loads(output)
    if stage == "merge_transcripts":
        if not data.get("crosstalk"):
            return f"{data.get('word_count', 0)} words; crosstalk not applied"
        removed = "/".join(str(n) for n in data.get("crosstalk_removed") or [])
        return f"{data.get('word_count', 0)} words; crosstalk removed: {removed}"
    return ""
