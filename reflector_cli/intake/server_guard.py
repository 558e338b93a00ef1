"""What `reflector serve` checks before doing any work: body size, the API token, and that
no secret reaches a log line (uvicorn's access log prints query strings)."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Iterable, Mapping

from starlette.requests import Request

MAX_BODY_BYTES = 1 << 20  # a Daily webhook is a few KB; anything near this is not one
MAX_ID_CHARS = 256  # ids we issue are < 40 characters

_TOKEN_PARAM = re.compile(r"(?i)(access_token=)[^&\s\"']*")


class BodyTooLarge(Exception):
    """The request body is over the limit (declared or streamed)."""


async def bounded_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused from the Content-Length or as soon as the stream passes `limit`,
    so an oversized body is never held in memory whole."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """`Authorization: Bearer …`, else `?access_token=…` (browsers cannot set headers)."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return query.get("access_token") or None


def token_ok(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison; no configured token means nobody gets in."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    text = _TOKEN_PARAM.sub(r"\1[redacted]", text)
    for s in secrets:
        if s:
            text = text.replace(s, "[redacted]")
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and string arguments in place (uvicorn's access formatter
    unpacks `record.args`, so the arguments keep their shape)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, self.secrets)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(a, self.secrets) if isinstance(a, str) else a for a in record.args
            )
        return True


def install_redaction(secrets: Iterable[str], loggers: Iterable[str]) -> None:
    """Put the filter on every handler of these loggers (handler filters also see records
    propagated from child loggers, which logger filters do not)."""
    guard = RedactSecrets(secrets)
    for name in loggers:
        for handler in logging.getLogger(name or None).handlers:
            handler.addFilter(guard)
