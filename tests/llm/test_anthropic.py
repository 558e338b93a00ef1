"""The anthropic backend: the real `anthropic` client against a fake Messages API on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.core.errors import ConfigError
from reflector_cli.core.models import LlmOptions
from reflector_cli.llm import default_backend_name, get_backend
from reflector_cli.llm.base import TitleRequest, TopicText
from reflector_cli.llm.cost import estimate_cost
from reflector_cli.llm.structured import InvalidAnswerError, LlmUnavailableError
from tests.llm.fake_servers import API_KEY, FakeLLM, Fault, run_stages, serve, usage_events
from tests.llm.meeting import NAMES

ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "REFLECTOR_LLM", "LLM_URL", "LLM_API_KEY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer key or `.env` leaks in: every setting a test relies on is explicit."""
    for name in (*ENV, "LLM_MODEL", "REFLECTOR_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with serve("anthropic") as state:
        yield state


def settings_for(fake: FakeLLM, root: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": root,
        "anthropic_api_key": API_KEY,
        "anthropic_base_url": fake.url,
        "llm_model": "claude-test-model",
        "llm_max_tokens": 777,
        "llm_concurrency": 2,
        "llm_timeout_s": 5.0,
        "retry_backoff_s": 0.01,
    }
    return load_settings(**{**values, **extra})


def title_request() -> TitleRequest:
    topics = [TopicText(title="Release date", summary="Alice Moreno moved the release.")]
    return TitleRequest(topics=topics, participants=NAMES)


def test_stages_run_on_claude_with_names_and_usage(fake: FakeLLM, tmp_path: Path) -> None:
    out = run_stages(tmp_path, settings_for(fake, tmp_path), "anthropic")

    assert fake.problems == []
    assert {s.body["model"] for s in fake.seen} == {"claude-test-model"}
    assert {s.body["max_tokens"] for s in fake.seen} == {777}
    sent = {s.headers.get("x-api-key") or s.headers["authorization"] for s in fake.seen}
    assert sent in ({API_KEY}, {f"Bearer {API_KEY}"})
    # 3 topic chunks, 1 title, 1 notes call (the meeting fits one context).
    assert len(fake.seen) == 5
    prompts = [s.body["messages"][0]["content"] for s in fake.seen]
    assert all("Participants: Alice Moreno, Bob Chen, Carol Diaz" in p for p in prompts)
    assert not any("Speaker 1" in p for p in prompts)

    assert [t.title for t in out.topics.topics] == [f"Subject number {n}" for n in (1, 2, 3)]
    assert out.topics.topics[0].summary.startswith("Alice Moreno")
    assert out.title.title == "Mobile Release Date, Onboarding and Pricing Page"
    assert out.summary.short_summary == "Alice Moreno ran the meeting."
    assert out.summary.long_summary.startswith("# Quick recap\n\nAlice Moreno ran the meeting.")
    assert "# Summary" in out.summary.long_summary and "**Release**" in out.summary.long_summary
    items = out.summary.action_items
    # Names the model wrote loosely ("alice", "Bob") come back as the participants' names.
    assert items.decisions[0].decided_by == "Alice Moreno"
    assert [(s.assigned_to, s.deadline) for s in items.next_steps] == [
        ("Bob Chen", None),
        ("Carol Diaz", "Friday"),
    ]

    usage = usage_events(out.events)
    assert set(usage) == {"detect_topics", "generate_title", "generate_summary"}
    assert usage["detect_topics"]["calls"] == 3 and usage["detect_topics"]["input_tokens"] > 0
    assert usage["generate_summary"]["output_tokens"] > 0
    assert usage["generate_title"]["model"] == "claude-test-model"


def test_malformed_json_is_reasked_with_the_error(fake: FakeLLM, tmp_path: Path) -> None:
    fake.faults = [
        Fault("malformed", when="part 2 of"),
        Fault("speaker_label", when="part 3 of"),
        Fault("too_long", when="part 3 of"),
    ]
    out = run_stages(tmp_path, settings_for(fake, tmp_path), "anthropic")

    assert [t.title for t in out.topics.topics] == [f"Subject number {n}" for n in (1, 2, 3)]
    part2 = fake.prompts("could not be used")
    re_asks = [s.body["messages"] for s in part2]
    assert len(re_asks) == 3  # one for part 2, two for part 3
    # The re-ask replays the bad answer and names what was wrong with it.
    malformed = next(m for m in re_asks if "part 2 of" in m[0]["content"])
    assert malformed[1] == {
        "role": "assistant",
        "content": '{"title": "Half an answer", "summary": ',
    }
    assert "no valid JSON object" in malformed[2]["content"]
    part3 = [m[-1]["content"] for m in re_asks if "part 3 of" in m[0]["content"]]
    assert any("instead of 'Speaker 2'" in c and "Alice Moreno" in c for c in part3)
    assert any("at most 2 sentences" in c for c in part3)
    assert usage_events(out.events)["detect_topics"]["re_asks"] == 3


def test_429_with_retry_after_then_529_recover(fake: FakeLLM, tmp_path: Path) -> None:
    fake.faults = [
        Fault("429", when="one title", retry_after="0.3"),
        Fault("529", when="one title"),
    ]
    events: list[tuple[str, dict[str, object]]] = []

    class Sink:
        stage = "generate_title"

        def emit(self, event_type: str, **data: object) -> None:
            events.append((event_type, data))

    backend = get_backend(
        LlmOptions(backend="anthropic"), settings_for(fake, tmp_path), sink=Sink()
    )
    started = time.monotonic()
    title = backend.title(title_request())
    elapsed = time.monotonic() - started

    assert title == "Mobile Release Date, Onboarding and Pricing Page"
    assert [s.answered for s in fake.seen] == ["429", "529", "ok"]
    assert elapsed >= 0.3  # the server's retry-after was honoured, not our 10 ms backoff
    assert events[0][0] == "LLM_USAGE" and events[0][1]["retries"] == 2


def test_overload_that_never_ends_fails_with_one_line(fake: FakeLLM, tmp_path: Path) -> None:
    fake.faults = [Fault("529") for _ in range(5)]
    backend = get_backend(LlmOptions(backend="anthropic"), settings_for(fake, tmp_path))
    with pytest.raises(LlmUnavailableError) as err:
        backend.title(title_request())
    message = str(err.value)
    assert "\n" not in message and "529" in message and "gave up after 5 attempts" in message
    assert len(fake.seen) == 5


def test_answers_that_stay_invalid_fail_after_two_reasks(fake: FakeLLM, tmp_path: Path) -> None:
    fake.faults = [Fault("malformed") for _ in range(3)]
    backend = get_backend(LlmOptions(backend="anthropic"), settings_for(fake, tmp_path))
    with pytest.raises(InvalidAnswerError, match="unusable TitleAnswer after 3 tries"):
        backend.title(title_request())
    assert len(fake.seen) == 3


def test_wrong_key_is_a_config_error_and_not_retried(fake: FakeLLM, tmp_path: Path) -> None:
    settings = settings_for(fake, tmp_path, anthropic_api_key="wrong", llm_concurrency=1)
    with pytest.raises(ConfigError, match="rejected ANTHROPIC_API_KEY"):
        run_stages(tmp_path, settings, "anthropic")
    # Our retries would make 5 requests; the 2.x client itself re-sends a 401 once at most.
    assert 1 <= len(fake.seen) <= 2


def test_concurrency_limit_is_shared_by_parallel_chunks(fake: FakeLLM, tmp_path: Path) -> None:
    # Two recordings processed at once in one process: each has 3 chunks and its own backend,
    # but the process-wide limit of 2 holds across both.
    fake.delay_s = 0.1
    settings = settings_for(fake, tmp_path, llm_concurrency=2)
    roots = [tmp_path / "a", tmp_path / "b"]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda root: run_stages(root, settings, "anthropic"), roots))
    assert all(len(r.topics.topics) == 3 for r in results)
    assert len(fake.seen) == 10
    assert fake.max_in_flight == 2


def test_without_a_key_nothing_touches_the_network(
    fake: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Servers are configured, but no key and no --llm: the extractive default must run.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("LLM_URL", fake.url)
    settings = load_settings(data_dir=tmp_path)
    assert default_backend_name(settings) == "extractive"
    out = run_stages(tmp_path, settings, default_backend_name(settings))
    assert out.title.title and len(out.topics.topics) == 3
    assert fake.seen == [] and usage_events(out.events) == {}
    assert estimate_cost(9000, settings)["calls"] == 0
    with pytest.raises(ConfigError, match="needs ANTHROPIC_API_KEY"):
        get_backend(LlmOptions(backend="anthropic"), settings)


def test_key_in_env_picks_anthropic_unless_llm_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    assert default_backend_name(load_settings()) == "anthropic"
    assert default_backend_name(load_settings(llm="extractive")) == "extractive"
    monkeypatch.setenv("REFLECTOR_LLM", "openai")
    assert default_backend_name(load_settings()) == "openai"


def test_cost_estimate_grows_with_the_meeting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    small = estimate_cost(3000, load_settings())
    big = estimate_cost(30000, load_settings())
    assert small["backend"] == "anthropic" and small["model"] == "claude-haiku-4-5"
    assert small["calls"] == 10 + 1 + 1  # ten chunks, a title, one notes call
    assert big["input_tokens"] > 9 * small["input_tokens"]
    assert 0 < small["usd"] < big["usd"] < 1.0


def test_answers_are_constrained_by_a_forced_tool_with_the_answer_schema(
    fake: FakeLLM, tmp_path: Path
) -> None:
    from reflector_cli.llm import prompts as P

    fake.faults = [Fault("speaker_label", when="part 1 of")]
    out = run_stages(tmp_path, settings_for(fake, tmp_path), "anthropic")
    assert fake.problems == []
    assert out.title.title == "Mobile Release Date, Onboarding and Pricing Page"
    for seen in fake.seen:
        (tool,) = seen.body["tools"]
        assert seen.body["tool_choice"] == {"type": "tool", "name": tool["name"]}
    title = fake.prompts("one title")[0].body["tools"][0]["input_schema"]
    assert title == P.TitleAnswer.model_json_schema()
    # The semantic check still re-asks: the tool's answer is replayed as JSON text.
    (re_ask,) = fake.prompts("could not be used")
    replayed = re_ask.body["messages"][1]
    assert replayed["role"] == "assistant" and "Speaker 2 said" in replayed["content"]
    assert "instead of 'Speaker 2'" in re_ask.body["messages"][2]["content"]
    assert [t.title for t in out.topics.topics] == [f"Subject number {n}" for n in (1, 2, 3)]
