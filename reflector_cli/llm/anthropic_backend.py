"""The `anthropic` backend: Claude through the official client's Messages API.

Answers are schema-constrained through a forced tool call (the tool's `input_schema` is the
pydantic model's JSON schema). The client's own retries are off; the shared Caller retries
429/529/5xx with our backoff, so both networked backends honour `retry-after` the same way.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import ConfigError, PermanentStageError
from reflector_cli.core.retry import retry_after_s
from reflector_cli.llm.structured import (
    ChatBackend,
    Message,
    Reply,
    RetryableLlmError,
    UsageSink,
)

DEFAULT_MODEL = "claude-haiku-4-5"
CONTEXT_TOKENS = 200_000  # every current Claude model; chunk packing plans within this
DEFAULT_BASE_URL = "https://api.anthropic.com"
ANSWER_TOOL = "answer"  # the one tool Claude is made to call; its input is the answer


class AnthropicBackend(ChatBackend):
    name = "anthropic"

    def __init__(
        self, settings: Settings, model: str | None = None, sink: UsageSink | None = None
    ) -> None:
        if settings.anthropic_api_key is None:
            raise ConfigError("--llm anthropic needs ANTHROPIC_API_KEY (or use --llm extractive)")
        try:
            import anthropic
        except ImportError as err:  # an optional extra: say how to get it
            raise ConfigError(
                "--llm anthropic needs the anthropic package: "
                "pip install 'reflector-cli[anthropic]'"
            ) from err
        self._anthropic = anthropic
        self._client = anthropic.Anthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url or DEFAULT_BASE_URL,
            timeout=settings.llm_timeout_s,
            max_retries=0,
        )
        self._max_tokens = settings.llm_max_tokens
        model = model or settings.llm_model or DEFAULT_MODEL
        super().__init__(
            model=model,
            send=self._send,
            settings=settings,
            context_tokens=CONTEXT_TOKENS,
            server=str(self._client.base_url),
            sink=sink,
        )

    def _send(self, system: str, messages: list[Message], schema: type[BaseModel] | None) -> Reply:
        a = self._anthropic
        # A forced tool whose input schema is the answer's: Claude answers with a JSON object
        # of that shape (every Claude model supports tool use; no beta flag needed).
        tools: dict[str, Any] = {}
        if schema is not None:
            tool = {
                "name": ANSWER_TOOL,
                "description": f"Give the answer as a {schema.__name__} object.",
                "input_schema": schema.model_json_schema(),
            }
            tools = {"tools": [tool], "tool_choice": {"type": "tool", "name": ANSWER_TOOL}}
        try:
            response: Any = self._client.messages.create(
                model=self.model,
                max_tokens=self._max_tokens,
                system=system,
                messages=messages,  # type: ignore[arg-type]
                **tools,
            )
        except (a.APITimeoutError, a.APIConnectionError) as err:
            raise RetryableLlmError(f"cannot reach the Anthropic API: {err}") from err
        except a.APIStatusError as err:
            status = err.status_code
            detail = _detail(err)
            if status == 429 or status == 408 or status >= 500:
                retry_after = retry_after_s(err.response.headers.get("retry-after"))
                raise RetryableLlmError(f"HTTP {status}: {detail}", retry_after) from err
            if status in (401, 403):
                raise ConfigError(f"Anthropic API rejected ANTHROPIC_API_KEY ({status})") from err
            if status == 404:
                raise ConfigError(f"Anthropic API: model {self.model!r} not found") from err
            raise PermanentStageError(
                f"Anthropic API refused the request ({status}: {detail})"
            ) from err
        text = "".join(b.text for b in response.content if getattr(b, "type", "") == "text")
        data = next(
            (
                b.input
                for b in response.content
                if getattr(b, "type", "") == "tool_use" and isinstance(b.input, dict)
            ),
            None,
        )
        usage = response.usage
        return Reply(
            # A re-ask replays the answer as text: the tool input's JSON when there is one.
            text=json.dumps(data) if data is not None else text,
            input_tokens=int(usage.input_tokens or 0),
            output_tokens=int(usage.output_tokens or 0),
            truncated=response.stop_reason == "max_tokens",
            data=data,
        )


def _detail(err: Any) -> str:
    """The API's own one-line error message when the body has one."""
    body = err.body if isinstance(err.body, dict) else {}
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    message = inner.get("message") if isinstance(inner, dict) else None
    return str(message or err.message).splitlines()[0][:200]
