"""S3-compatible artifact storage against a real S3 API (moto's server on 127.0.0.1): unit
operations, then the whole pipeline with REFLECTOR_STORAGE_URL=s3://… so workers share it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    import boto3
    from moto import server as moto_server

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="artifacts")
    try:
        yield env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def test_s3_storage_operations(s3_env: dict[str, str], tmp_path: Path) -> None:
    from reflector_cli.storage import open_storage

    st = open_storage("s3://artifacts/unit", tmp_path)
    assert not st.exists("rec/a.json")
    st.write_bytes("rec/a.json", b'{"x": 1}')
    assert st.exists("rec/a.json") and st.size("rec/a.json") == 8
    with st.writer("rec/b.flac", suffix=".flac") as tmp:
        tmp.write_bytes(b"fLaC")
    with st.local_path("rec/b.flac") as p:
        assert p.read_bytes() == b"fLaC"
    assert st.list("rec") == ["rec/a.json", "rec/b.flac"]
    st.delete("rec/a.json")
    assert not st.exists("rec/a.json")
    with pytest.raises(FileNotFoundError), st.local_path("rec/missing.flac"):
        pass
    with pytest.raises(Exception, match="not a safe"):
        st.write_bytes("../escape", b"")


def test_pipeline_with_artifacts_in_s3(s3_env: dict[str, str], tmp_path: Path) -> None:
    import boto3

    env = {
        **os.environ,
        **s3_env,
        "REFLECTOR_DATA_DIR": str(tmp_path / "data"),
        "REFLECTOR_STORAGE_URL": "s3://artifacts/shared",
    }
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "reflector_cli.cli",
            "process",
            str(ROOT / "fixtures" / "meeting"),
            "--json",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "ended" and doc["word_count"] > 50
    listed = boto3.client("s3").list_objects_v2(Bucket="artifacts", Prefix="shared/")
    keys = {o["Key"].split("/", 2)[2] for o in listed["Contents"]}
    assert {"mixdown.mp3", "transcript.json"} <= keys
    assert any(k.startswith("final-") and k.endswith(".json") for k in keys)
    assert not list((tmp_path / "data").glob("rec-*"))  # nothing written locally
