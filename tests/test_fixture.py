"""The committed sample meeting matches its truth file, and the generator is deterministic.

Runs scripts/make_fixture.py for real (espeak-ng + PyAV); no whisper here (too slow).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from reflector_cli.sources.folder import parse_daily_name, scan_folder

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
MEETING = FIXTURES / "meeting"
sys.path.insert(0, str(ROOT / "scripts"))

import make_fixture  # noqa: E402  (a script, not a package: importable only via sys.path)

SIZE_BUDGET = 450_000  # bytes for the whole committed fixtures/ folder


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Whole file as mono float32 at its own rate."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rs = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        out = [f.to_ndarray()[0] for fr in c.decode(stream) for f in rs.resample(fr)]
        out += [f.to_ndarray()[0] for f in rs.resample(None)]
        return np.concatenate(out), stream.rate


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((FIXTURES / "meeting.truth.json").read_text())


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((MEETING / "recording.json").read_text())


def test_manifest_matches_truth(manifest: dict, truth: dict) -> None:
    assert manifest["language"] == "en"
    assert isinstance(manifest["room"], str) and isinstance(manifest["started_at_ms"], int)
    people = manifest["participants"]
    assert len(people) == 3
    assert len({p["participant_id"] for p in people}) == 3
    for i, p in enumerate(people):
        assert (MEETING / p["file"]).is_file()
        assert p["consent"] is True
        assert p["name"] == truth["speakers"][i]["name"]
        assert p["offset_s"] == truth["speakers"][i]["join_s"]
    # Participants really join at different times, and the containers differ.
    assert sorted(p["offset_s"] for p in people) == [p["offset_s"] for p in people]
    assert len({p["offset_s"] for p in people}) == 3
    assert {Path(p["file"]).suffix for p in people} == {".webm", ".ogg", ".mp3"}


def test_truth_is_a_consistent_timeline(truth: dict) -> None:
    utts = truth["utterances"]
    assert 20 <= len(utts) <= 30
    assert 60 <= truth["duration_s"] <= 90
    assert {u["speaker"] for u in utts} == {0, 1, 2}
    for prev, cur in zip(utts, utts[1:], strict=False):
        assert prev["end"] <= cur["start"], "utterances overlap"
    for u in utts:
        sp = truth["speakers"][u["speaker"]]
        assert u["name"] == sp["name"]
        assert sp["join_s"] <= u["start"] < u["end"] <= truth["duration_s"]
        assert u["text"].strip()


def test_the_folder_reader_sees_the_manifest_offsets(manifest: dict, truth: dict) -> None:
    scan = scan_folder(MEETING)
    assert scan.warnings == []
    assert [t.file for t in scan.tracks] == [p["file"] for p in manifest["participants"]]
    for track, sp in zip(scan.tracks, truth["speakers"], strict=True):
        assert track.offset_s == sp["join_s"]
        assert track.duration_s == pytest.approx(truth["duration_s"] - sp["join_s"], abs=0.1)


def test_tracks_have_speech_exactly_where_the_truth_says(truth: dict) -> None:
    for sp in truth["speakers"]:
        audio, rate = _decode(MEETING / sp["file"])
        # The track starts at the join time and runs to the end of the meeting.
        assert audio.size / rate == pytest.approx(truth["duration_s"] - sp["join_s"], abs=0.1)
        speech = np.zeros(audio.size, dtype=bool)
        for u in truth["utterances"]:
            if u["speaker"] != sp["speaker"]:
                continue
            a = round((u["start"] - sp["join_s"]) * rate)
            b = round((u["end"] - sp["join_s"]) * rate)
            assert _rms(audio[a:b]) > 0.03, f"{sp['name']}: no speech at {u['start']} s"
            # Codec delay/pre-echo can smear a few ms; keep a margin around each utterance.
            speech[max(a - rate // 10, 0) : b + rate // 10] = True
        quiet = audio[~speech]
        assert quiet.size > rate  # every track has silent stretches (others talking)
        level = _rms(quiet)
        assert 1e-4 < level < 10 ** (-50 / 20), f"{sp['name']}: silence at {level:.5f} RMS"


def test_committed_fixture_fits_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < SIZE_BUDGET


def test_generator_is_deterministic_and_matches_the_committed_fixture(
    tmp_path: Path, manifest: dict, truth: dict
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    make_fixture.main(["--out", str(first)])
    make_fixture.main(["--out", str(second)])
    assert _hashes(first) == _hashes(second)
    # Audio bytes depend on the espeak-ng/FFmpeg builds; the script content must not.
    assert json.loads((first / "meeting" / "recording.json").read_text()) == manifest
    again = json.loads((first / "meeting.truth.json").read_text())
    assert [(u["speaker"], u["text"]) for u in again["utterances"]] == [
        (u["speaker"], u["text"]) for u in truth["utterances"]
    ]


def test_daily_names_carry_participant_and_offset(tmp_path: Path, manifest: dict) -> None:
    folder = make_fixture.generate(tmp_path, daily_names=True)
    assert not (folder / "recording.json").exists()
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 3
    parsed = {d.participant_id: d for d in map(parse_daily_name, names) if d is not None}
    assert len(parsed) == 3
    for p in manifest["participants"]:
        d = parsed[p["participant_id"]]
        assert d.kind == "cam-audio"
        assert d.recording_start_ms == manifest["started_at_ms"]
        assert d.offset_s == p["offset_s"]
    scan = scan_folder(folder)
    assert scan.warnings == []
    assert sorted(t.offset_s for t in scan.tracks) == [0.0, 6.0, 15.0]


def test_benchmark_mode_rotates_more_speakers(tmp_path: Path) -> None:
    folder = make_fixture.generate(tmp_path, minutes=0.5, speakers=4)
    doc = json.loads((tmp_path / "meeting.truth.json").read_text())
    assert doc["duration_s"] <= 30
    assert [s["file"] for s in doc["speakers"]] == [
        "speaker1.webm",
        "speaker2.ogg",
        "speaker3.mp3",
        "speaker4.webm",
    ]
    for prev, cur in zip(doc["utterances"], doc["utterances"][1:], strict=False):
        assert prev["end"] <= cur["start"]
    for sp in doc["speakers"]:
        audio, rate = _decode(folder / sp["file"])
        assert audio.size / rate == pytest.approx(doc["duration_s"] - sp["join_s"], abs=0.1)
