"""Models by name: bundled tiny.en, the local cache, offline misses, and a pull from a fake hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reflector_cli.core.errors import ConfigError
from reflector_cli.core.whisper_models import bundled_path, resolve_model
from tests.cli.conftest import cli, cli_json
from tests.hub_fake import FakeHub

BUNDLED = bundled_path()
assert BUNDLED is not None


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Empty model caches for this test (environment only: our code reads them as a user's)."""
    env = {
        "REFLECTOR_MODELS_DIR": str(tmp_path / "models"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_path_and_bundled_name_resolve(caches: dict[str, str]) -> None:
    assert resolve_model(str(BUNDLED)) == BUNDLED.resolve()
    assert resolve_model("tiny.en") == BUNDLED


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("small", "run `reflector models pull small`"),
        ("large-v3", "or pass --model PATH"),
        ("no-such-model", "not a known model name"),
        ("./nowhere", "no such directory"),
    ],
)
def test_missing_model_is_one_line_saying_what_to_do(
    caches: dict[str, str], ref: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_model(ref)
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_directory_without_model_bin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no model.bin"):
        resolve_model(str(tmp_path))


def test_process_with_a_missing_name_fails_before_storing(
    caches: dict[str, str], tmp_path: Path
) -> None:
    res = cli("process", "fixtures/meeting", "--model", "medium", data_dir=tmp_path / "d",
              env=caches, check=False)  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "reflector models pull medium" in res.stderr
    assert not (tmp_path / "d" / "reflector.sqlite3").exists()


def test_pull_from_a_fake_hub_then_list_and_resolve(caches: dict[str, str], tmp_path: Path) -> None:
    with FakeHub(BUNDLED) as hub:
        # A user's shell: HF_HUB_OFFLINE unset (in-process stages of other tests set it here).
        env = {**caches, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
        res = cli("models", "pull", "small", data_dir=tmp_path / "d", env=env)
    assert "small: ready at" in res.stderr
    # The real client asked for the repository, its tree, and each file.
    assert any("/api/models/Systran/faster-whisper-small/revision/main" in r for r in hub.requests)
    assert any(r.startswith("GET /Systran/faster-whisper-small/resolve/") for r in hub.requests)
    pulled = Path(caches["REFLECTOR_MODELS_DIR"]) / "small"
    assert (pulled / "model.bin").read_bytes() == (BUNDLED / "model.bin").read_bytes()
    assert hub.bytes_served >= (BUNDLED / "model.bin").stat().st_size
    os.environ.update(caches)
    assert resolve_model("small") == pulled.resolve()
    listed = {m["name"]: m for m in cli_json("models", "list", data_dir=tmp_path / "d", env=caches)}
    assert listed["tiny.en"]["source"] == "bundled"
    assert listed["small"]["path"] == str(pulled)
    assert listed["small"]["size_bytes"] >= (BUNDLED / "model.bin").stat().st_size


def test_pull_of_an_unknown_name_or_unreachable_hub_is_one_line(
    caches: dict[str, str], tmp_path: Path
) -> None:
    res = cli("models", "pull", "huge-v9", data_dir=tmp_path, env=caches, check=False)
    assert res.returncode == 1 and "not a known model name" in res.stderr
    # Nothing listens on the discard port.
    env = {**caches, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    res = cli("models", "pull", "base", data_dir=tmp_path, env=env, check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "model base: download of Systran/faster-whisper-base failed" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_name_resolves_from_the_huggingface_cache_layout(caches: dict[str, str]) -> None:
    repo = Path(caches["HF_HUB_CACHE"]) / "models--Systran--faster-whisper-base"
    snap = repo / "snapshots" / "c0ffee"
    snap.mkdir(parents=True)
    for f in BUNDLED.iterdir():
        (snap / f.name).symlink_to(f)
    (repo / "refs").mkdir()
    with pytest.raises(ConfigError, match="models pull base"):  # no ref yet: not complete
        resolve_model("base")
    (repo / "refs" / "main").write_text("c0ffee")
    assert resolve_model("base") == snap.resolve()


def test_prepare_writes_the_int8_copy_once_and_lists_it_nowhere(
    caches: dict[str, str], tmp_path: Path
) -> None:
    first = cli_json("models", "prepare", "tiny.en", data_dir=tmp_path / "d", env=caches)
    copy = Path(first["int8_copy"])
    assert first["note"] == "written" and first["model"] == str(BUNDLED)
    assert copy.parent == Path(caches["REFLECTOR_MODELS_DIR"]) / ".int8"
    assert (copy / "model.bin").is_file() and (copy / "tokenizer.json").is_file()
    again = cli_json("models", "prepare", data_dir=tmp_path / "d", env=caches)
    assert again == {**first, "note": "ready"}
    listed = cli_json("models", "list", data_dir=tmp_path / "d", env=caches)
    assert [m["name"] for m in listed] == ["tiny.en"]
