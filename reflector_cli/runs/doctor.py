"""`reflector doctor`: checks a user can read at a glance (what is wrong and what to set)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import ReflectorError
from reflector_cli.providers import registry
from reflector_cli.store.schema import schema_version


def _check(name: str, ok: bool, detail: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "required": required}


def check_model(settings: Settings) -> dict[str, Any]:
    from reflector_cli.core.errors import ConfigError
    from reflector_cli.core.whisper_models import resolve_model

    try:
        return _check("whisper model", True, str(resolve_model(settings.model)))
    except ConfigError as exc:
        return _check("whisper model", False, f"{exc} (or set REFLECTOR_MODEL)")


def check_asr(settings: Settings) -> dict[str, Any]:
    """The transcription options a run would get (device resolved, language, English-only)."""
    from reflector_cli.core.languages import english_only
    from reflector_cli.pipeline.execute import asr_options

    try:
        asr = asr_options(settings)
    except ReflectorError as exc:  # a bad model is reported by its own row, not fatal here
        return _check("asr options", False, str(exc), required=False)
    kind = "English-only" if english_only(asr.model) else "multilingual"
    detail = (
        f"device {asr.device} · {asr.compute_type} · beam {asr.beam_size} · "
        f"batch {asr.batch_size} · "
        f"language {settings.language_flag or settings.language} · {kind} model"
    )
    return _check("asr options", True, detail, required=False)


def check_audio() -> dict[str, Any]:
    """Decoders for the tracks people upload, and the mixdown's MP3 encoder (lameenc)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        import av
    except ImportError as exc:
        return _check("audio codecs", False, f"PyAV not importable: {exc}")
    missing = sorted(c for c in ("opus", "mp3", "flac") if c not in av.codecs_available)
    try:
        import lameenc  # noqa: F401

        mp3 = f"lameenc {version('lameenc')}"
    except (ImportError, PackageNotFoundError):
        mp3, missing = "", [*missing, "lameenc (the MP3 encoder)"]
    detail = ", ".join(filter(None, [f"PyAV {av.__version__}", mp3]))
    return _check("audio codecs", not missing, detail + (f", missing {missing}" if missing else ""))


def check_data_dir(settings: Settings) -> dict[str, Any]:
    d = Path(settings.data_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
        return _check("data dir", True, f"{d.resolve()} (writable)")
    except OSError as exc:
        return _check("data dir", False, f"{d}: {exc.strerror}")


def check_database(settings: Settings) -> dict[str, Any]:
    if not settings.db_path.exists():
        return _check("database", True, f"{settings.db_path} (created on first run)")
    try:
        version = schema_version(settings.db_path)
        return _check("database", True, f"{settings.db_path} (schema v{version})")
    except sqlite3.Error as exc:
        return _check("database", False, f"{settings.db_path}: {exc}")


def check_provider(settings: Settings) -> dict[str, Any]:
    ok, detail = registry.spec(settings.provider).ready(settings)
    return _check("provider", ok, detail)


def check_llm(settings: Settings) -> dict[str, Any]:
    if settings.llm == "extractive":
        return _check("llm", True, "extractive (offline, built in)")
    key = settings.anthropic_api_key is not None
    return _check("llm", key, f"{settings.llm}" + ("" if key else ": API key not set"))


def check_api_token(settings: Settings) -> dict[str, Any]:
    """Whether `serve` can open its events WebSocket; never the token itself."""
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    if token:
        return _check("api token", True, "REFLECTOR_API_TOKEN is set")
    return _check(
        "api token",
        False,
        "REFLECTOR_API_TOKEN is not set: `serve` keeps the events WebSocket closed",
        required=False,
    )


def run_checks(settings: Settings) -> list[dict[str, Any]]:
    return [
        check_model(settings),
        check_asr(settings),
        check_audio(),
        check_data_dir(settings),
        check_database(settings),
        check_provider(settings),
        check_llm(settings),
        check_api_token(settings),
        # Each provider's own rows (Hatchet's token and endpoints, when in use or configured).
        *(row for spec in registry.SPECS for row in spec.checks(settings)),
    ]
