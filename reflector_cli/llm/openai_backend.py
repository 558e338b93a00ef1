"""The `openai` backend: any OpenAI-compatible `/v1/chat/completions` server, through httpx.

Answers are constrained with `response_format: {"type": "json_schema", ...}` (llama.cpp, vLLM,
Ollama and OpenAI accept it); a server that refuses it (400/422) is asked in free text from
then on. Local servers often have small contexts, so packing plans within a conservative window.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from pydantic import BaseModel

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import ConfigError, PermanentStageError
from reflector_cli.core.retry import retry_after_s
from reflector_cli.core.urls import endpoint_label
from reflector_cli.llm.structured import (
    ChatBackend,
    Message,
    Reply,
    RetryableLlmError,
    UsageSink,
)

log = logging.getLogger("reflector.llm")

CONTEXT_TOKENS = 8192  # safe for most local models; we cannot ask the server for its window


def completions_url(base: str) -> str:
    """Accepts `http://host:port`, `.../v1` or the full `.../v1/chat/completions`."""
    base = base.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return f"{base}/chat/completions"
    return f"{base}/v1/chat/completions"


class OpenAIBackend(ChatBackend):
    name = "openai"

    def __init__(
        self, settings: Settings, model: str | None = None, sink: UsageSink | None = None
    ) -> None:
        if not settings.llm_url:
            raise ConfigError("--llm openai needs LLM_URL (an OpenAI-compatible server)")
        model = model or settings.llm_model
        if not model:
            raise ConfigError("--llm openai needs LLM_MODEL (the model name the server serves)")
        self._url = completions_url(settings.llm_url)
        self._where = endpoint_label(self._url)  # LLM_URL may carry credentials
        headers = {"content-type": "application/json"}
        if settings.llm_api_key is not None:
            headers["authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
        self._client = httpx.Client(headers=headers, timeout=settings.llm_timeout_s)
        self._max_tokens = settings.llm_max_tokens
        # Ask for `response_format: json_schema` until the server shows it does not know it.
        self._json_schema = True
        super().__init__(
            model=model,
            send=self._send,
            settings=settings,
            context_tokens=CONTEXT_TOKENS,
            server=self._where,
            sink=sink,
        )

    def _send(self, system: str, messages: list[Message], schema: type[BaseModel] | None) -> Reply:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self._max_tokens,
            "temperature": 0,
            "messages": [{"role": "system", "content": system}, *messages],
        }
        if schema is not None and self._json_schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()},
            }
        response = self._post(body)
        if "response_format" in body and response.status_code in (400, 422):
            # Many local servers do not know json_schema: ask in free text from now on.
            log.info("%s refused response_format json_schema; asking without it", self._where)
            self._json_schema = False
            del body["response_format"]
            response = self._post(body)
        return self._reply(response, constrained="response_format" in body)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            response = self._client.post(self._url, json=body)
        except httpx.TransportError as err:  # timeouts, refused connections, resets
            raise RetryableLlmError(f"cannot reach {self._where}: {err}") from err
        status = response.status_code
        if status == 429 or status == 408 or status >= 500:
            retry_after = retry_after_s(response.headers.get("retry-after"))
            raise RetryableLlmError(f"HTTP {status} from {self._where}", retry_after)
        if status in (401, 403):
            raise ConfigError(f"{self._where} rejected LLM_API_KEY ({status})")
        if status == 404:
            raise ConfigError(f"{self._where}: not found (check LLM_URL and LLM_MODEL)")
        return response

    def _reply(self, response: httpx.Response, *, constrained: bool) -> Reply:
        if response.status_code >= 400:
            raise PermanentStageError(f"{self._where} refused the request ({response.status_code})")
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
            # A proxy error page or a half-written body: transient as far as we can tell.
            raise RetryableLlmError(f"malformed response from {self._where}") from err
        usage = data.get("usage") or {}
        return Reply(
            text=text,
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            truncated=choice.get("finish_reason") == "length",
            data=_object(text) if constrained else None,
        )


def _object(text: str) -> dict[str, Any] | None:
    """The constrained answer as an object; None lets the caller fish (and re-ask) as usual."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
