"""Shared machinery of the networked backends: JSON answers validated with pydantic and re-asked
with the error, HTTP retries with backoff, a per-process concurrency gate, token usage totals.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TypedDict, TypeVar

from pydantic import BaseModel, ValidationError

from reflector_cli.llm.base import TopicChunk

T = TypeVar("T", bound=BaseModel)

HTTP_ATTEMPTS = 5  # one request plus four retries on 429/529/5xx/network errors
RE_ASKS = 2  # an invalid answer is re-asked twice with the error before giving up
MAX_WAIT_S = 60.0  # never sleep longer than this between attempts, whatever the server says
CHARS_PER_TOKEN = 3.5  # English is ~4; rounding down keeps the estimate on the safe side
SPEAKER_LABEL = re.compile(r"\bSpeaker \d+\b")


class Message(TypedDict):
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Reply:
    text: str
    input_tokens: int
    output_tokens: int
    truncated: bool = False  # the model hit max_tokens, so the JSON is probably cut off


class RetryableLlmError(Exception):
    """429/529/5xx/timeout/network: worth another try, after `retry_after` s when the server says."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LlmUnavailableError(Exception):
    """The server kept failing; transient, so the provider may retry the whole stage later."""


class InvalidAnswerError(Exception):
    """The model kept answering with something we cannot use, even after re-asks."""


SendFn = Callable[[str, list[Message]], Reply]


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `retry-after` header (delta seconds; HTTP dates are rare enough to skip)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


# --------------------------------------------------------------------------- concurrency


class Gate:
    """Caps concurrent requests in this process and, after a 429, holds every caller back."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._resume_at = 0.0

    def pause_all(self, seconds: float) -> None:
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            # A rate-limit pause set by any thread delays everyone's next request.
            while (wait := self._resume_at - time.monotonic()) > 0:
                time.sleep(min(wait, MAX_WAIT_S))
            yield


_GATES: dict[tuple[str, int], Gate] = {}
_GATES_LOCK = threading.Lock()


def shared_gate(name: str, limit: int) -> Gate:
    """One gate per (server, limit) per process, shared by every backend instance and thread."""
    with _GATES_LOCK:
        return _GATES.setdefault((name, limit), Gate(limit))


# --------------------------------------------------------------------------- usage


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    retries: int = 0
    re_asks: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "calls": self.calls,
                "retries": self.retries,
                "re_asks": self.re_asks,
            }


# --------------------------------------------------------------------------- answers


def extract_json(text: str) -> dict[str, object]:
    """The first JSON object in `text`, tolerating code fences and chatter around it."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("the answer contains no valid JSON object")


def describe_error(err: Exception) -> str:
    """One short line a model (and a human) can act on."""
    if isinstance(err, ValidationError):
        parts = []
        for e in err.errors()[:5]:
            loc = ".".join(str(x) for x in e["loc"]) or "answer"
            parts.append(f"{loc}: {e['msg']}")
        return "; ".join(parts)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def speaker_label_check(known_names: Sequence[str]) -> Callable[[str], None]:
    """Rejects "Speaker 2" in model text unless that label really is a participant's name."""
    allowed = set(known_names)

    def check(text: str) -> None:
        for label in SPEAKER_LABEL.findall(text):
            if label not in allowed:
                names = ", ".join(n for n in known_names if not SPEAKER_LABEL.fullmatch(n))
                raise ValueError(f"use participant names ({names}) instead of {label!r}")

    return check


# --------------------------------------------------------------------------- calling


class Caller:
    """Sends prompts through `send`, retrying transport failures and re-asking bad answers."""

    def __init__(
        self,
        name: str,
        send: SendFn,
        gate: Gate,
        usage: Usage,
        backoff_s: float = 1.0,
        attempts: int = HTTP_ATTEMPTS,
        re_asks: int = RE_ASKS,
    ) -> None:
        self.name = name
        self.send = send
        self.gate = gate
        self.usage = usage
        self.backoff_s = backoff_s
        self.attempts = attempts
        self.re_asks = re_asks

    def call(self, system: str, messages: list[Message]) -> Reply:
        last: RetryableLlmError | None = None
        for attempt in range(self.attempts):
            if attempt:
                self.usage.add(retries=1)
            try:
                with self.gate.slot():
                    reply = self.send(system, messages)
            except RetryableLlmError as err:
                last = err
                if attempt + 1 == self.attempts:
                    break
                if err.retry_after is not None:
                    wait = min(err.retry_after, MAX_WAIT_S)
                    self.gate.pause_all(wait)
                else:
                    # Exponential backoff with jitter so parallel chunk calls do not stampede.
                    wait = min(self.backoff_s * 2**attempt, MAX_WAIT_S) * random.uniform(0.75, 1)
                # Sleep outside the slot so other calls may use it (the gate still honours pauses).
                time.sleep(wait)
                continue
            self.usage.add(
                calls=1, input_tokens=reply.input_tokens, output_tokens=reply.output_tokens
            )
            return reply
        raise LlmUnavailableError(f"{self.name}: {last} (gave up after {self.attempts} attempts)")

    def ask(
        self,
        system: str,
        prompt: str,
        schema: type[T],
        check: Callable[[T], None] | None = None,
    ) -> T:
        """A validated `schema` instance; each invalid answer is re-asked with its error."""
        messages: list[Message] = [{"role": "user", "content": prompt}]
        error = ""
        for round_ in range(self.re_asks + 1):
            if round_:
                self.usage.add(re_asks=1)
            reply = self.call(system, messages)
            try:
                if reply.truncated:
                    raise ValueError("the answer was cut off at the token limit; answer briefly")
                answer = schema.model_validate(extract_json(reply.text))
                if check is not None:
                    check(answer)
            except (ValueError, ValidationError) as err:
                error = describe_error(err)
                messages = [
                    *messages,
                    {"role": "assistant", "content": reply.text or "(empty)"},
                    {
                        "role": "user",
                        "content": f"That answer could not be used: {error}. Reply again with "
                        "only the corrected JSON object, nothing else.",
                    },
                ]
                continue
            return answer
        raise InvalidAnswerError(
            f"{self.name}: unusable {schema.__name__} after {self.re_asks + 1} tries: {error}"
        )


# --------------------------------------------------------------------------- context budget


def chunk_tokens(chunk: TopicChunk) -> int:
    return estimate_tokens(chunk.text) + 2


def fit_chunk(chunk: TopicChunk, budget: int) -> TopicChunk:
    """`chunk`, minus trailing utterances if its text alone would not fit in `budget` tokens."""
    if chunk_tokens(chunk) <= budget:
        return chunk
    kept = list(chunk.utterances)
    while len(kept) > 1 and estimate_tokens("\n".join(f"{u.name}: {u.text}" for u in kept)) > budget:
        kept.pop()
    if estimate_tokens(f"{kept[0].name}: {kept[0].text}") > budget:
        # One endless sentence: cut its characters rather than overflow the context.
        u = kept[0]
        room = max(1, int(budget * CHARS_PER_TOKEN) - len(u.name) - 2)
        kept = [u.model_copy(update={"text": u.text[:room]})]
    return chunk.model_copy(update={"utterances": kept})


def pack_chunks(chunks: Sequence[TopicChunk], budget: int) -> list[list[TopicChunk]]:
    """Consecutive chunks grouped so that no group's estimated tokens exceed `budget`."""
    groups: list[list[TopicChunk]] = []
    used = 0
    for chunk in chunks:
        chunk = fit_chunk(chunk, budget)
        cost = chunk_tokens(chunk)
        if groups and used + cost <= budget:
            groups[-1].append(chunk)
            used += cost
        else:
            groups.append([chunk])
            used = cost
    return groups
