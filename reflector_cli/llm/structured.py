"""Shared machinery of the networked backends: JSON answers validated with pydantic and re-asked
with the error, HTTP retries with backoff, a per-process concurrency gate, token usage totals.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, TypeVar

from pydantic import BaseModel, ValidationError

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import ConfigError, ServiceUnavailable
from reflector_cli.core.retry import RetryPolicy, TryAgain, attempts
from reflector_cli.llm import prompts as P
from reflector_cli.llm.base import (
    Backend,
    ProgressFn,
    SummaryRequest,
    SummaryText,
    TitleRequest,
    TopicChunk,
    TopicText,
)

T = TypeVar("T", bound=BaseModel)

HTTP_ATTEMPTS = 5  # one request plus four retries on 429/529/5xx/network errors
RE_ASKS = 2  # an invalid answer is re-asked twice with the error before giving up
MAX_WAIT_S = 60.0  # never sleep longer than this between attempts, whatever the server says
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
    # The answer as the server's schema-constrained output gave it (tool input, json_schema
    # content); None when the model answered in free text and the JSON must be fished out.
    data: dict[str, Any] | None = None


class RetryableLlmError(TryAgain):
    """429/529/5xx/timeout/network: worth retrying, after `wait_s` s if the server says."""


class LlmUnavailableError(ServiceUnavailable):
    """The server kept failing; transient, so the provider may retry the whole stage later."""


class InvalidAnswerError(Exception):
    """The model kept answering with something we cannot use, even after re-asks."""


# (system, messages, the answer's schema): backends constrain the answer to it where they can.
SendFn = Callable[[str, list[Message], type[BaseModel] | None], Reply]


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

    def call(
        self, system: str, messages: list[Message], schema: type[BaseModel] | None = None
    ) -> Reply:
        # Exponential backoff with jitter so parallel chunk calls do not stampede; the first
        # retry waits 2 x backoff_s.
        policy = RetryPolicy(self.attempts, self.backoff_s * 2, 2.0, MAX_WAIT_S, jitter=0.25)

        def note(wait: float, exc: TryAgain) -> None:
            self.usage.add(retries=1)
            if exc.wait_s is not None:
                self.gate.pause_all(wait)  # the server asked: every caller holds back

        try:
            for attempt in attempts(policy, note):
                with attempt:
                    # The wait between attempts happens outside the slot, so others may use it.
                    with self.gate.slot():
                        reply = self.send(system, messages, schema)
                    self.usage.add(
                        calls=1, input_tokens=reply.input_tokens, output_tokens=reply.output_tokens
                    )
                    return reply
        except RetryableLlmError as err:
            raise LlmUnavailableError(
                f"{self.name}: {err} (gave up after {self.attempts} attempts)"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def ask(
        self,
        system: str,
        prompt: str,
        schema: type[T],
        check: Callable[[T], None] | None = None,
    ) -> T:
        """A validated `schema` instance; each invalid answer is re-asked with its error.

        The schema is sent along (tool input schema, `response_format`), so a capable server
        only produces well-formed answers; semantic checks (`check`: unknown speaker names,
        sentence limits) and validation errors still get a re-ask."""
        messages: list[Message] = [{"role": "user", "content": prompt}]
        error = ""
        for round_ in range(self.re_asks + 1):
            if round_:
                self.usage.add(re_asks=1)
            reply = self.call(system, messages, schema)
            try:
                if reply.truncated:
                    raise ValueError("the answer was cut off at the token limit; answer briefly")
                data = reply.data if reply.data is not None else extract_json(reply.text)
                answer = schema.model_validate(data)
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


# --------------------------------------------------------------------------- shared backend

# Room kept for instructions, participant list and the JSON shape around the transcript.
PROMPT_OVERHEAD_TOKENS = 600
CONTEXT_SAFETY = 0.8  # our token estimate is a heuristic; never plan on the last 20 %


class UsageSink(Protocol):
    """What a backend reports usage to: the StageContext fits (its stage name and emit)."""

    stage: str

    def emit(self, event_type: str, **data: Any) -> None: ...


class ChatBackend(Backend):
    """Topics, title and summary through any chat model `send` reaches; subclasses wire `send`."""

    name = "chat"

    def __init__(
        self,
        *,
        model: str,
        send: SendFn,
        settings: Settings,
        context_tokens: int,
        server: str,
        sink: UsageSink | None = None,
    ) -> None:
        self.model = model
        self.sink = sink
        self.concurrency = settings.llm_concurrency
        self.usage = Usage()
        gate = shared_gate(f"{self.name}:{server}", settings.llm_concurrency)
        self.caller = Caller(
            f"{self.name} ({model})", send, gate, self.usage, backoff_s=settings.retry_backoff_s
        )
        room = int((context_tokens - settings.llm_max_tokens) * CONTEXT_SAFETY)
        self.budget = room - PROMPT_OVERHEAD_TOKENS
        if self.budget < 200:
            raise ConfigError(
                f"{self.name}: REFLECTOR_LLM_MAX_TOKENS={settings.llm_max_tokens} leaves no room "
                f"for the transcript in a {context_tokens}-token context"
            )

    # ---- Backend interface

    def topic(self, chunk: TopicChunk, chunks: Sequence[TopicChunk]) -> TopicText:
        names = list(dict.fromkeys(u.name for c in chunks for u in c.utterances))
        check = speaker_label_check(names)
        prompt = P.topic_prompt(P.fit_chunk(chunk, self.budget), len(chunks), names)
        answer = self.caller.ask(
            P.SYSTEM, prompt, P.TopicAnswer, check=lambda a: check(f"{a.title} {a.summary}")
        )
        return TopicText(title=answer.title, summary=answer.summary)

    def topics(
        self, chunks: Sequence[TopicChunk], progress: ProgressFn | None = None
    ) -> list[TopicText]:
        with self._reporting():
            out: dict[int, TopicText] = {}
            workers = max(1, min(self.concurrency, len(chunks)))
            with ThreadPoolExecutor(workers, thread_name_prefix="llm-topic") as pool:
                futures = {pool.submit(self.topic, c, chunks): k for k, c in enumerate(chunks)}
                try:
                    # Progress is reported from this thread: event sinks may not be thread-safe.
                    for future in as_completed(futures):
                        out[futures[future]] = future.result()
                        if progress is not None:
                            progress(len(out), len(chunks))
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
            return [out[k] for k in range(len(chunks))]

    def title(self, request: TitleRequest) -> str | None:
        if not request.topics:
            return None
        with self._reporting():
            check = speaker_label_check(request.participants)
            prompt = P.title_prompt(request.topics, request.participants)
            answer = self.caller.ask(
                P.SYSTEM, prompt, P.TitleAnswer, check=lambda a: check(a.title)
            )
            return answer.title

    def summary(self, request: SummaryRequest) -> SummaryText:
        chunks = [c for c in request.chunks if c.utterances]
        if not chunks:
            none = "No speech was detected."
            return SummaryText(short=none, long_markdown=f"# Quick recap\n\n{none}\n")
        names = list(
            dict.fromkeys([*request.participants, *(u.name for c in chunks for u in c.utterances)])
        )
        check = speaker_label_check(names)
        with self._reporting():
            groups = P.pack_chunks(chunks, self.budget)

            def notes(k: int) -> P.NotesAnswer:
                prompt = P.notes_prompt(groups[k], k, len(groups), names)
                return self.caller.ask(
                    P.SYSTEM, prompt, P.NotesAnswer, check=lambda a: check(a.model_dump_json())
                )

            workers = max(1, min(self.concurrency, len(groups)))
            with ThreadPoolExecutor(workers, thread_name_prefix="llm-notes") as pool:
                parts = list(pool.map(notes, range(len(groups))))
            if len(parts) == 1:
                recap, subjects = parts[0].recap, parts[0].subjects
            else:
                merged = self.caller.ask(
                    P.SYSTEM,
                    P.merge_prompt(parts, names),
                    P.MergedAnswer,
                    check=lambda a: check(a.model_dump_json()),
                )
                recap, subjects = merged.recap, merged.subjects
            return SummaryText(
                short=recap.strip(),
                long_markdown=P.long_markdown(recap, subjects),
                action_items=P.action_items_from(parts, names),
            )

    # ---- usage

    @contextmanager
    def _reporting(self) -> Iterator[None]:
        """Emit this call's token usage even when it fails: the tokens were spent either way."""
        before = self.usage.snapshot()
        try:
            yield
        finally:
            after = self.usage.snapshot()
            delta = {k: after[k] - before[k] for k in after}
            if self.sink is not None and (delta["calls"] or delta["retries"]):
                self.sink.emit(
                    "LLM_USAGE", stage=self.sink.stage, backend=self.name, model=self.model, **delta
                )
