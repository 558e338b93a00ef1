"""The report's audio: linked by file URL, embedded as a data URI (bounded), or explained."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from reflector_cli.core.config import load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.store.repo import Store
from reflector_cli.views.report import html_report
from tests.store.test_store import doc, pipe

KEY = "rec-1/mixdown.mp3"


def stored(tmp_path: Path, audio: bytes | None = b"ID3 fake mp3 bytes") -> Store:
    store = Store(tmp_path / "reflector.sqlite3")
    store.ensure_recording(pipe())
    store.commit_final(doc(), "r-1")
    if audio is not None:
        (tmp_path / "rec-1").mkdir()
        (tmp_path / KEY).write_bytes(audio)
    return store


def test_audio_is_linked_by_file_url_or_embedded(tmp_path: Path) -> None:
    store, settings = stored(tmp_path), load_settings(data_dir=tmp_path)
    linked = html_report(store, settings, "t-rec-1")
    assert f'src="{(tmp_path / KEY).resolve().as_uri()}"' in linked
    embedded = html_report(store, settings, "t-rec-1", embed_audio=True)
    data = base64.b64encode(b"ID3 fake mp3 bytes").decode()
    assert f'src="data:audio/mpeg;base64,{data}"' in embedded
    with pytest.raises(UserError, match="--embed-audio: the mixdown is .* over the"):
        html_report(store, settings, "t-rec-1", embed_audio=True, embed_limit=4)


def test_missing_or_deleted_audio_is_explained(tmp_path: Path) -> None:
    store, settings = stored(tmp_path, audio=None), load_settings(data_dir=tmp_path)
    page = html_report(store, settings, "t-rec-1")
    assert "<audio" not in page and "no longer in storage" in page
    store.set_audio_deleted("t-rec-1")
    page = html_report(store, settings, "t-rec-1")
    assert "<audio" not in page and "audio was deleted" in page and "consent" in page
    # The stored waveform is drawn: two peaks, two bars.
    assert page.count('class="peak"') == 2
