"""The int8 copy of a whisper model: made once, transcribes exactly like the original, and is
never used when it would not."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio

from reflector_cli.core.config import default_model_path
from reflector_cli.stages import asr, asr_weights
from reflector_cli.stages.asr_weights import prepare

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "meeting"
SOURCE = Path(default_model_path())


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A models dir whose int8 copy of the bundled model the ASR stage's loader wrote."""
    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFLECTOR_MODELS_DIR", str(root))
        key = asr_weights._key(SOURCE)
        # What a writer killed mid-way leaves behind.
        (root / ".int8" / f"{key}.4242.tmp").mkdir(parents=True)
        asr.load_model.cache_clear()
        asr.load_model(str(SOURCE), "int8", 1)
        asr.load_model.cache_clear()
        yield root


@pytest.fixture
def in_root(models_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REFLECTOR_MODELS_DIR", str(models_root))
    return models_root / ".int8"


def _words(model_dir: Path, audio: np.ndarray) -> list[tuple[str, float, float, float]]:
    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=1)
    segments, _ = model.transcribe(audio, word_timestamps=True, condition_on_previous_text=False)
    return [(w.word, w.start, w.end, w.probability) for s in segments for w in s.words or []]


def test_loading_the_model_writes_a_copy_that_transcribes_exactly_like_the_original(
    in_root: Path,
) -> None:
    done = prepare(SOURCE)
    assert done.note == "ready" and done.path is not None
    assert done.path.parent == in_root and not list(in_root.glob("*.tmp"))
    copy = done.path / "model.bin"
    assert copy.stat().st_size < 0.7 * (SOURCE / "model.bin").stat().st_size
    audio = decode_audio(str(FIXTURE / "alice.webm"))[: 16000 * 20]
    words = _words(done.path, audio)
    assert len(words) > 20
    assert words == _words(SOURCE, audio)


def test_a_copy_that_decodes_differently_is_caught(in_root: Path, tmp_path: Path) -> None:
    good = prepare(SOURCE).path
    assert good is not None
    tampered = tmp_path / "tampered"
    shutil.copytree(good, tampered)
    variables = asr_weights._read(memoryview((tampered / "model.bin").read_bytes()))[2]
    weight = next(v for v in variables if v.name == "encoder/layer_0/ffn/linear_0/weight")
    offset = (tampered / "model.bin").read_bytes().index(bytes(weight.data))
    with open(tampered / "model.bin", "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes((b + 40) % 256 for b in bytes(weight.data[:4096])))
    assert asr_weights._same_outputs(SOURCE, good)
    assert not asr_weights._same_outputs(SOURCE, tampered)


def test_a_model_already_int8_or_unreadable_is_remembered_and_loaded_as_it_is(
    in_root: Path, tmp_path: Path
) -> None:
    good = prepare(SOURCE).path
    assert good is not None
    already = tmp_path / "already"
    shutil.copytree(good, already)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"\x06\x00\x00\x00\xff")
    for src, why in ((already, "no float weights to quantize"), (broken, "not readable")):
        first = prepare(src)
        assert first.path is None and why in first.note
        assert (in_root / f"{asr_weights._key(src)}.rejected").is_file()
        assert prepare(src) == first
        assert asr_weights.int8_copy(src) is None


def test_while_another_process_writes_the_copy_the_original_is_loaded(
    in_root: Path, tmp_path: Path
) -> None:
    src = tmp_path / "model"
    shutil.copytree(SOURCE, src)
    with open(in_root / f"{asr_weights._key(src)}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert prepare(src) == (None, "another process is writing it")
    assert not (in_root / asr_weights._key(src)).exists()
    first = prepare(src)
    assert first.note == "written" and first.path is not None


def test_a_reinstalled_model_gets_a_new_copy_and_only_its_old_one_goes(
    in_root: Path, tmp_path: Path
) -> None:
    src = tmp_path / "model"
    shutil.copytree(SOURCE, src)
    old = prepare(src).path
    assert old is not None and old.is_dir()
    # The same source checked by another CTranslate2 (another install sharing the cache).
    other_ct2 = in_root / "model-00000000000000aa"
    shutil.copytree(old, other_ct2)
    origin = json.loads((old / asr_weights.ORIGIN).read_text())
    (other_ct2 / asr_weights.ORIGIN).write_text(json.dumps({**origin, "ctranslate2": "0.0"}))
    killed_writer = in_root / "model-00000000000000bb.4242.tmp"
    killed_writer.mkdir()
    later = (src / "model.bin").stat().st_mtime_ns + 10**9
    os.utime(src / "model.bin", ns=(later, later))
    new = prepare(src)
    assert new.note == "written" and new.path not in (None, old)
    assert not old.exists() and not killed_writer.exists()
    assert other_ct2.is_dir()
    assert prepare(SOURCE).note == "ready"  # another source's copy is kept


def test_a_broken_copy_never_breaks_loading(in_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "model"
    shutil.copytree(SOURCE, src)
    copy = prepare(src).path
    assert copy is not None
    with open(copy / "model.bin", "r+b") as fh:
        fh.truncate(1000)
    asr.load_model.cache_clear()
    try:
        model = asr.load_model(str(src), "int8", 1)
    finally:
        asr.load_model.cache_clear()
    audio = decode_audio(str(FIXTURE / "alice.webm"))[: 16000 * 8]
    segments, _ = model.transcribe(audio)
    assert any(s.text.strip() for s in segments)
    # A copy that lost its weights (removed by hand) is written again.
    (copy / "model.bin").unlink()
    assert prepare(src) == (copy, "written")


def test_a_model_the_check_cannot_run_on_is_refused_not_raised(
    in_root: Path, tmp_path: Path
) -> None:
    src = tmp_path / "model"
    shutil.copytree(SOURCE, src)
    (src / "tokenizer.json").unlink()
    done = prepare(src)
    assert done.path is None and "no tokenizer.json" in done.note
    assert prepare(src) == done


def test_other_compute_types_load_the_original(
    models_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    monkeypatch.setenv("REFLECTOR_MODELS_DIR", str(empty))
    asr.load_model.cache_clear()
    try:
        asr.load_model(str(SOURCE), "float32", 1)
    finally:
        asr.load_model.cache_clear()
    assert not empty.exists()


def test_a_cache_others_may_write_to_is_not_trusted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REFLECTOR_MODELS_DIR", str(tmp_path))
    (tmp_path / ".int8").mkdir(mode=0o700)
    (tmp_path / ".int8").chmod(0o777)
    done = prepare(SOURCE)
    assert done.path is None and "not private" in done.note
    assert list((tmp_path / ".int8").iterdir()) == []
