"""CLI test helpers: run the real `reflector` console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "meeting"
TRUTH = ROOT / "fixtures" / "meeting.truth.json"
REFLECTOR = [sys.executable, "-m", "reflector_cli.cli"]


def cli(*args: str, data_dir: Path, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
    env = {**os.environ, "REFLECTOR_DATA_DIR": str(data_dir), "REFLECTOR_RETRY_BACKOFF": "0"}
    env.update(kw.pop("env", {}))
    kw.setdefault("cwd", ROOT)  # `python -m` puts the working directory first on sys.path
    res = subprocess.run(
        [*REFLECTOR, *args], capture_output=True, text=True, env=env, timeout=600, **kw
    )
    if check and res.returncode != 0:
        raise AssertionError(f"reflector {' '.join(args)} -> {res.returncode}\n{res.stderr}")
    return res


def cli_json(*args: str, data_dir: Path, **kw: Any) -> Any:
    return json.loads(cli(*args, "--json", data_dir=data_dir, **kw).stdout)


@pytest.fixture(scope="session")
def processed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The bundled fixture processed once, uninterrupted, with the real model."""
    data = tmp_path_factory.mktemp("data")
    return data, cli_json("process", str(FIXTURE), data_dir=data)


@pytest.fixture
def meeting_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "meeting"
    shutil.copytree(FIXTURE, dst)
    return dst
