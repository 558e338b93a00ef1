"""Language end to end through the real CLI: refusal before anything is stored, and French
speech (espeak-ng) detected and transcribed with the multilingual `base` model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import multilingual_model  # noqa: E402  (a script: importable only via sys.path)

from tests.cli.conftest import cli, cli_json  # noqa: E402

FRENCH = (
    "Bonjour à tous. Aujourd'hui nous préparons le lancement du nouveau tableau de bord. "
    "Le plus grand risque est la migration de la base de données."
)


def _french_meeting(folder: Path, language: str) -> Path:
    folder.mkdir()
    subprocess.run(
        ["espeak-ng", "-v", "fr", "-s", "150", "-w", str(folder / "claire.wav"), FRENCH],
        check=True,
    )
    manifest = {"language": language, "participants": [{"file": "claire.wav", "name": "Claire"}]}
    (folder / "recording.json").write_text(json.dumps(manifest))
    return folder


def test_french_with_the_english_only_model_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    meeting = _french_meeting(tmp_path / "fr", "fr")
    data = tmp_path / "data"
    res = cli("process", str(meeting), data_dir=data, check=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "error: language 'fr' needs a multilingual model; tiny.en is English-only "
        "(use --model PATH)"
    ]
    assert not data.exists() or not any(data.iterdir())


@pytest.mark.slow
def test_auto_detects_french_per_track_and_records_it(tmp_path: Path) -> None:
    meeting = _french_meeting(tmp_path / "fr", "auto")
    data = tmp_path / "data"
    model = str(multilingual_model.assemble())
    doc = cli_json("process", str(meeting), "--model", model, "--no-deliver", data_dir=data)
    assert doc["language"] == "fr"
    words = cli_json("export", doc["transcript_id"], "--format", "json", data_dir=data)["words"]
    text = " ".join(w["text"] for w in words).lower()
    assert "tableau" in text and "migration" in text, text
    run = cli_json("runs", "show", doc["run_id"], data_dir=data)
    (track,) = [s["output"] for s in run["stages"] if s["stage"] == "transcribe_track"]
    assert track["language"] == "fr" and track["language_probability"] > 0.5
