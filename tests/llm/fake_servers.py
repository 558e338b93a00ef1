"""Fake Anthropic Messages and OpenAI chat-completions servers on 127.0.0.1 for backend tests.

They check each request's shape, answer by recognising which of our prompts they got, and play
scripted faults first (429 with retry-after, 529 overloaded, malformed JSON, "Speaker 2").
Schema-constrained requests get the constrained shape back: Anthropic a forced `tool_use`
block, OpenAI the JSON content of a `response_format: json_schema` request (or a 400 when the
fake plays a server that does not know json_schema).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reflector_cli.core.config import Settings
from reflector_cli.core.models import (
    LlmOptions,
    MergeOut,
    SummaryIn,
    SummaryOut,
    TitleIn,
    TitleOut,
    TopicsIn,
    TopicsOut,
    TranscriptDoc,
)
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.llm import detect_topics, generate_summary, generate_title
from reflector_cli.storage import LocalStorage
from tests.llm.meeting import build_doc, participants

API_KEY = "test-key-123"


@dataclass
class Fault:
    """A scripted misbehaviour, served to the next request that matches `when` (a prompt cue)."""

    kind: str  # "429", "529", "500", "malformed", "speaker_label", "too_long"
    when: str = ""
    retry_after: str | None = None


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    answered: str  # "ok", a fault kind, or "rejected: why"


@dataclass
class FakeLLM:
    """Shared state of one fake server: the fault script and every request it saw."""

    kind: str  # "anthropic" or "openai"
    faults: list[Fault] = field(default_factory=list)
    delay_s: float = 0.0  # per answer, so concurrent calls overlap and can be counted
    in_flight: int = 0
    max_in_flight: int = 0
    seen: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    json_schema: bool = True  # OpenAI fake: accepts `response_format: json_schema`

    def prompts(self, cue: str) -> list[Seen]:
        return [s for s in self.seen if cue in last_user_text(s.body)]

    def take_fault(self, prompt: str) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.when in prompt:
                    return self.faults.pop(i)
        return None


def first_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[0]["content"]) if users else ""


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[-1]["content"]) if users else ""


# --------------------------------------------------------------------------- canned answers


def answer_for(prompt: str) -> dict[str, Any]:
    """A valid answer for whichever of our prompts this is, using the names it was given."""
    names = re.search(r"Participants: (.*)", prompt)
    people = names.group(1).split(", ") if names else ["someone"]
    first = people[0]
    if "topic title" in prompt:
        part = re.search(r"part (\d+) of", prompt)
        n = part.group(1) if part else "?"
        return {
            "title": f"Subject number {n}",
            "summary": f"{first} led part {n}. Everyone agreed on next steps.",
        }
    if "one title for the whole meeting" in prompt:
        return {"title": "Mobile Release Date, Onboarding and Pricing Page"}
    if "Merge them" in prompt:
        return {
            "subjects": [{"subject": "Whole meeting", "paragraph": f"{first} chaired it."}],
            "recap": f"{first} merged recap.",
        }
    if "List the distinct subjects" in prompt:
        part = re.search(r"part (\d+) of", prompt)
        tag = f" (part {part.group(1)})" if part else ""
        return {
            "subjects": [
                {"subject": f"Release{tag}", "paragraph": f"{first} moved the release."},
                {"subject": f"Pricing{tag}", "paragraph": "The pricing page gets simpler."},
            ],
            "recap": f"{first} ran the meeting{tag}.",
            "decisions": [{"decision": "Move the release to March 14th", "decided_by": "alice"}],
            "next_steps": [
                {"task": "Check billing with finance", "assigned_to": "Bob", "deadline": None},
                {"task": "Update the mockups", "assigned_to": "carol diaz", "deadline": "Friday"},
            ],
        }
    return {"error": "unrecognised prompt"}


def faulty_text(fault: Fault, good: dict[str, Any]) -> str:
    if fault.kind == "malformed":
        return '{"title": "Half an answer", "summary": '  # cut off: not JSON
    if fault.kind == "speaker_label":
        return json.dumps({**good, "summary": "Speaker 2 said the crash is fixed."})
    if fault.kind == "too_long":
        return json.dumps({**good, "summary": "One. Two. Three sentences is too many."})
    raise AssertionError(fault.kind)


# --------------------------------------------------------------------------- request checks


def check_anthropic(headers: dict[str, str], body: dict[str, Any]) -> str | None:
    # Older clients send `x-api-key`; the installed 2.x client sends a bearer token instead.
    keys = {headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer ")}
    if API_KEY not in keys:
        return "auth: missing or wrong API key (x-api-key or bearer)"
    if not headers.get("anthropic-version"):
        return "missing anthropic-version header"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model missing"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] <= 0:
        return "max_tokens missing"
    if not isinstance(body.get("system"), str):
        return "system prompt missing"
    if "tools" in body:
        names = [t.get("name") for t in body["tools"]]
        if not all(t.get("input_schema", {}).get("type") == "object" for t in body["tools"]):
            return "tool input_schema must be an object schema"
        choice = body.get("tool_choice") or {}
        if choice.get("type") != "tool" or choice.get("name") not in names:
            return "tool_choice must force one of the tools"
    return check_turns(body.get("messages"))


def check_openai(headers: dict[str, str], body: dict[str, Any]) -> str | None:
    if headers.get("authorization") != f"Bearer {API_KEY}":
        return "auth: missing or wrong bearer token"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model missing"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens missing"
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "system":
        return "system message missing"
    if "response_format" in body:
        fmt = body["response_format"]
        spec = fmt.get("json_schema") or {}
        if fmt.get("type") != "json_schema" or not spec.get("name"):
            return "response_format must be a named json_schema"
        if spec.get("schema", {}).get("type") != "object":
            return "response_format schema must be an object schema"
    return check_turns(messages[1:])


def check_turns(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages missing"
    for i, m in enumerate(messages):
        want = "user" if i % 2 == 0 else "assistant"
        if m.get("role") != want or not isinstance(m.get("content"), str) or not m["content"]:
            return f"message {i} should be a non-empty {want} turn"
    if messages[-1]["role"] != "user":
        return "last message must be the user's"
    return None


# --------------------------------------------------------------------------- wire formats


def anthropic_ok(body: dict[str, Any], text: str) -> dict[str, Any]:
    content: dict[str, Any] = {"type": "text", "text": text}
    stop = "end_turn"
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None  # not JSON (a malformed fault): as a model ignoring the tool would
    if "tools" in body and isinstance(answer, dict):
        name = body["tool_choice"]["name"]
        content = {"type": "tool_use", "id": "toolu_fake", "name": name, "input": answer}
        stop = "tool_use"
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [content],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": len(json.dumps(body)) // 4, "output_tokens": len(text) // 4},
    }


def openai_ok(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": len(json.dumps(body)) // 4,
            "completion_tokens": len(text) // 4,
        },
    }


def error_body(kind: str, status: int) -> dict[str, Any]:
    names = {429: "rate_limit_error", 529: "overloaded_error", 400: "invalid_request_error"}
    error = {"type": names.get(status, "api_error"), "message": f"fake {kind}"}
    return {"type": "error", "error": error}


def make_handler(state: FakeLLM) -> type[BaseHTTPRequestHandler]:
    path = "/v1/messages" if state.kind == "anthropic" else "/v1/chat/completions"
    check = check_anthropic if state.kind == "anthropic" else check_openai
    wrap = anthropic_ok if state.kind == "anthropic" else openai_ok

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # keep test output clean
            return

        def _reply(self, status: int, payload: dict[str, Any], extra: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = json.loads(raw or b"{}")
            problem = None if self.path == path else f"wrong path {self.path}"
            problem = problem or check(headers, body)
            if problem:
                with state.lock:
                    state.problems.append(problem)
                    state.seen.append(Seen(self.path, headers, body, f"rejected: {problem}"))
                status = 401 if problem.startswith("auth") else 400
                self._reply(status, error_body(problem, status), {})
                return
            if "response_format" in body and not state.json_schema:
                with state.lock:
                    state.seen.append(Seen(self.path, headers, body, "rejected: json_schema"))
                self._reply(400, {"error": {"message": "unknown response_format"}}, {})
                return
            prompt = first_user_text(body)
            fault = state.take_fault(prompt)
            with state.lock:
                state.seen.append(Seen(self.path, headers, body, fault.kind if fault else "ok"))
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                time.sleep(state.delay_s)
                self._answer(body, prompt, fault)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _answer(self, body: dict[str, Any], prompt: str, fault: Fault | None) -> None:
            good = answer_for(prompt)
            if fault and fault.kind in ("429", "529", "500"):
                extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
                self._reply(int(fault.kind), error_body(fault.kind, int(fault.kind)), extra)
                return
            text = faulty_text(fault, good) if fault else json.dumps(good)
            self._reply(200, wrap(body, text), {})

    return Handler


@contextmanager
def serve(kind: str) -> Iterator[FakeLLM]:
    """A running fake server of `kind` on an ephemeral 127.0.0.1 port."""
    state = FakeLLM(kind=kind)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --------------------------------------------------------------------------- running the stages

Events = list[tuple[str, dict[str, Any]]]


@dataclass
class StageResults:
    topics: TopicsOut
    title: TitleOut
    summary: SummaryOut
    events: Events


def stage_ctx(root: Path, settings: Settings, events: Events, stage: str) -> StageContext:
    return StageContext(
        storage=LocalStorage(root),
        settings=settings,
        stage=stage,
        emit_fn=lambda kind, data: events.append((kind, data)),
    )


def run_stages(
    root: Path, settings: Settings, backend: str, doc: TranscriptDoc | None = None
) -> StageResults:
    """detect_topics, generate_title and generate_summary on the 3-person meeting."""
    doc = doc or build_doc()
    events: Events = []
    storage = LocalStorage(root)
    key = "rec/transcript.json"
    storage.write_bytes(key, doc.model_dump_json().encode())
    merge = MergeOut(
        transcript_key=key,
        word_count=len(doc.words),
        speakers=sorted({w.speaker for w in doc.words}),
        duration_s=max((w.end for w in doc.words), default=0.0),
    )
    people = participants()
    llm = LlmOptions(backend=backend)
    topics = detect_topics(
        TopicsIn(recording_id="rec", llm=llm, merge=merge, participants=people),
        stage_ctx(root, settings, events, "detect_topics"),
    )
    title = generate_title(
        TitleIn(recording_id="rec", llm=llm, topics=topics, participants=people),
        stage_ctx(root, settings, events, "generate_title"),
    )
    summary = generate_summary(
        SummaryIn(recording_id="rec", llm=llm, merge=merge, topics=topics, participants=people),
        stage_ctx(root, settings, events, "generate_summary"),
    )
    return StageResults(topics, title, summary, events)


def usage_events(events: Events) -> dict[str, dict[str, Any]]:
    return {data["stage"]: data for kind, data in events if kind == "LLM_USAGE"}
