"""asr_options: what a run's transcription gets from settings (device, compute type, batch);
run_stage hands back the memory a stage kept for reuse."""

from __future__ import annotations

import subprocess
import sys
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


_TRIMS = """
import ctypes
import sys
from pathlib import Path
from reflector_cli.core.config import load_settings
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.execute import run_stage
from reflector_cli.pipeline.runinput import prepare_input
from reflector_cli.stages import heap

def rss():
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if "VmRSS" in x)
    return int(line.split()[1]) / 1024

settings = load_settings(data_dir=Path(sys.argv[2]))
inp = dag.stage("get_recording").build(prepare_input(sys.argv[1], settings), {}, None)
assert heap.reuse_freed()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
block = libc.malloc(48 << 20)  # a transient a stage freed: kept for reuse, still resident
ctypes.memset(block, 1, 48 << 20)
libc.free(block)
held = rss()
run_stage("get_recording", inp.model_dump(mode="json"), settings)
print(held - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc are Linux's")
def test_a_stage_hands_the_memory_kept_for_reuse_back_when_it_ends(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "meeting"
    out = subprocess.run(
        [sys.executable, "-c", _TRIMS, str(fixture), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(out.stdout) > 40
