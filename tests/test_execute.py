"""asr_options: what a run's transcription gets from settings (device, compute type, batch)."""

from __future__ import annotations

from pathlib import Path

import ctranslate2
import pytest
from pydantic import ValidationError

from reflector_cli.core.config import load_settings
from reflector_cli.pipeline.execute import asr_options


def test_auto_picks_the_device_ctranslate2_sees_and_its_defaults(tmp_path: Path) -> None:
    asr = asr_options(load_settings(data_dir=tmp_path))
    if ctranslate2.get_cuda_device_count() > 0:
        assert (asr.device, asr.compute_type, asr.batch_size) == ("cuda", "float16", 8)
    else:  # CI and this machine: no GPU, so CPU with int8 and sequential decoding
        assert (asr.device, asr.compute_type, asr.batch_size) == ("cpu", "int8", 1)
    assert asr.beam_size == 1


def test_defaults_follow_the_device_and_flags_override_them(tmp_path: Path) -> None:
    # Only options are built here (nothing is loaded), so asking for CUDA needs no GPU.
    cuda = asr_options(load_settings(data_dir=tmp_path, device="cuda"))
    assert (cuda.device, cuda.compute_type, cuda.batch_size) == ("cuda", "float16", 8)
    asked = load_settings(
        data_dir=tmp_path, device="cpu", compute_type="float32", batch_size=4, beam_size=3
    )
    cpu = asr_options(asked)
    assert (cpu.device, cpu.compute_type, cpu.batch_size, cpu.beam_size) == (
        "cpu",
        "float32",
        4,
        3,
    )


def test_the_environment_sets_the_batch_size_and_bad_values_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFLECTOR_BATCH_SIZE", "16")
    assert asr_options(load_settings(data_dir=tmp_path, device="cpu")).batch_size == 16
    for bad in (0, 65):
        with pytest.raises(ValidationError, match="batch_size"):
            load_settings(data_dir=tmp_path, batch_size=bad)
