"""The openai backend: httpx against a fake `/v1/chat/completions` server on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.core.errors import ConfigError
from reflector_cli.core.models import LlmOptions
from reflector_cli.llm import get_backend
from reflector_cli.llm.base import TitleRequest, TopicText
from reflector_cli.llm.openai_backend import CONTEXT_TOKENS, completions_url
from reflector_cli.llm.prompts import estimate_tokens
from reflector_cli.llm.structured import LlmUnavailableError
from tests.llm.fake_servers import (
    API_KEY,
    FakeLLM,
    Fault,
    Seen,
    run_stages,
    serve,
    usage_events,
)
from tests.llm.meeting import NAMES, build_doc

ENV = ("ANTHROPIC_API_KEY", "REFLECTOR_LLM", "LLM_URL", "LLM_API_KEY", "LLM_MODEL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*ENV, "REFLECTOR_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no `.env` from the working tree


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with serve("openai") as state:
        yield state


def settings_for(fake: FakeLLM, root: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": root,
        "llm_url": f"{fake.url}/v1",
        "llm_api_key": API_KEY,
        "llm_model": "local-model",
        "llm_max_tokens": 1000,
        "llm_concurrency": 3,
        "llm_timeout_s": 5.0,
        "retry_backoff_s": 0.01,
    }
    return load_settings(**{**values, **extra})


def user_prompt(seen: Seen) -> str:
    return str(seen.body["messages"][1]["content"])


def test_stages_run_on_an_openai_compatible_server(fake: FakeLLM, tmp_path: Path) -> None:
    out = run_stages(tmp_path, settings_for(fake, tmp_path), "openai")

    assert fake.problems == []
    assert len(fake.seen) == 5
    assert {(s.body["model"], s.body["max_tokens"]) for s in fake.seen} == {("local-model", 1000)}
    assert all(s.body["messages"][0]["role"] == "system" for s in fake.seen)
    assert [t.title for t in out.topics.topics] == [f"Subject number {n}" for n in (1, 2, 3)]
    assert out.title.title == "Mobile Release Date, Onboarding and Pricing Page"
    assert out.summary.action_items.next_steps[0].assigned_to == "Bob Chen"
    usage = usage_events(out.events)
    assert usage["detect_topics"]["backend"] == "openai" and usage["detect_topics"]["calls"] == 3
    assert usage["generate_summary"]["input_tokens"] > 0


def test_long_meeting_is_packed_within_the_context(fake: FakeLLM, tmp_path: Path) -> None:
    # max_tokens eats most of the 8k window, so the transcript must be split for the summary.
    settings = settings_for(fake, tmp_path, llm_max_tokens=6000)
    doc = build_doc()
    out = run_stages(tmp_path, settings, "openai", doc=doc)

    notes = fake.prompts("List the distinct subjects")
    assert len(notes) >= 2
    # Parts run in parallel, so put them back in meeting order by their "part N of M".
    notes.sort(key=lambda s: int(re.search(r"part (\d+) of", user_prompt(s)).group(1)))
    for seen in fake.seen:
        prompt = seen.body["messages"][0]["content"] + user_prompt(seen)
        assert estimate_tokens(prompt) + 6000 <= CONTEXT_TOKENS
    # Every word of the meeting reached exactly one notes prompt, in order.
    sent = " ".join(
        line.split(": ", 1)[1]
        for s in notes
        for line in user_prompt(s)
        .split("<transcript>\n")[1]
        .split("\n</transcript>")[0]
        .splitlines()
    )
    assert sent.split() == [w.text for w in doc.words]
    assert len(fake.prompts("Merge them")) == 1
    assert out.summary.short_summary == "Alice Moreno merged recap."
    assert "**Whole meeting**" in out.summary.long_summary


def test_503_with_retry_after_recovers(fake: FakeLLM, tmp_path: Path) -> None:
    fake.faults = [Fault("500", retry_after="0.05"), Fault("429", retry_after="0")]
    backend = get_backend(LlmOptions(backend="openai"), settings_for(fake, tmp_path))
    request = TitleRequest(
        topics=[TopicText(title="Pricing", summary="Tiers.")], participants=NAMES
    )
    assert backend.title(request) == "Mobile Release Date, Onboarding and Pricing Page"
    assert [s.answered for s in fake.seen] == ["500", "429", "ok"]


def test_server_that_stays_down_fails_clearly(tmp_path: Path) -> None:
    with serve("openai") as fake:
        settings = settings_for(fake, tmp_path)
    # The server is gone: connection refused five times, then one clear line.
    backend = get_backend(LlmOptions(backend="openai"), settings)
    request = TitleRequest(
        topics=[TopicText(title="Pricing", summary="Tiers.")], participants=NAMES
    )
    with pytest.raises(LlmUnavailableError, match=r"cannot reach .* \(gave up after 5 attempts\)"):
        backend.title(request)


def test_missing_url_or_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs LLM_URL"):
        get_backend(LlmOptions(backend="openai"), load_settings(data_dir=tmp_path))
    settings = load_settings(data_dir=tmp_path, llm_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="needs LLM_MODEL"):
        get_backend(LlmOptions(backend="openai"), settings)


def test_env_names_from_the_issue_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLM_MODEL", "qwen")
    monkeypatch.setenv("LLM_API_KEY", "k")
    backend = get_backend(LlmOptions(backend="openai"), load_settings())
    assert backend.model == "qwen"  # type: ignore[attr-defined]


def test_completions_url_accepts_common_forms() -> None:
    want = "http://h:1/v1/chat/completions"
    assert completions_url("http://h:1") == want
    assert completions_url("http://h:1/v1/") == want
    assert completions_url(want) == want


def test_answers_are_asked_for_with_a_json_schema(fake: FakeLLM, tmp_path: Path) -> None:
    from reflector_cli.llm import prompts as P

    run_stages(tmp_path, settings_for(fake, tmp_path), "openai")
    assert fake.problems == [] and fake.seen
    formats = [s.body["response_format"] for s in fake.seen]
    assert all(f["type"] == "json_schema" for f in formats)
    title = fake.prompts("one title")[0].body["response_format"]["json_schema"]
    assert title == {"name": "TitleAnswer", "schema": P.TitleAnswer.model_json_schema()}


def test_a_server_without_json_schema_is_asked_in_free_text(fake: FakeLLM, tmp_path: Path) -> None:
    fake.json_schema = False
    backend = get_backend(LlmOptions(backend="openai"), settings_for(fake, tmp_path))
    request = TitleRequest(
        topics=[TopicText(title="Release", summary="Moved.")], participants=NAMES
    )
    assert backend.title(request) == "Mobile Release Date, Onboarding and Pricing Page"
    assert backend.title(request) == "Mobile Release Date, Onboarding and Pricing Page"
    # One refusal, then the backend remembers and never sends response_format again.
    assert [s.answered for s in fake.seen] == ["rejected: json_schema", "ok", "ok"]
    assert ["response_format" in s.body for s in fake.seen] == [True, False, False]


def test_credentials_in_llm_url_never_reach_an_error(tmp_path: Path) -> None:
    with serve("openai") as fake:
        port = fake.url.rsplit(":", 1)[1]
        url = f"http://alice:s3cret-pw@127.0.0.1:{port}/v1?api_key=s3cret-q"
        settings = settings_for(fake, tmp_path, llm_url=url)
    backend = get_backend(LlmOptions(backend="openai"), settings)  # the server is gone now
    request = TitleRequest(
        topics=[TopicText(title="Pricing", summary="Tiers.")], participants=NAMES
    )
    with pytest.raises(LlmUnavailableError) as err:
        backend.title(request)
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "s3cret" not in str(err.value) and "alice" not in str(err.value)
