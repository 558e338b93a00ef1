"""Action items from commitment cues: decisions, and next steps with owners and deadlines."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from reflector_cli.core.models import ActionItems, Decision, NextStep
from reflector_cli.llm.base import Utterance
from reflector_cli.llm.text import FILLER, clean_sentence, ensure_period

T = TypeVar("T", Decision, NextStep)

_DECISION = re.compile(r"\b(?:decided|agreed|decision|settled on|we'll go with)\b", re.I)
_COMMIT = re.compile(
    r"\b(?:i will|i'll|i'm going to|i am going to|i can take|i'll take|we need to|we'll need to"
    r"|let's|let us|action item|we will|we'll)\b",
    re.I,
)
# "Let's start with…" steers the meeting; it is not work anyone takes away.
_MEETING_FLOW = re.compile(
    r"\blet's (?:start|begin|move on|go on|talk|get started|wrap|look|recap|continue)\b", re.I
)
_REQUEST = re.compile(r"\b(?:can|could|will|would) you\b", re.I)
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MONTH = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
)
_DEADLINE = re.compile(
    rf"\b(?:(?:next|this) )?{_WEEKDAY}\b|\btomorrow\b|\btonight\b"
    r"|\bend of (?:the )?(?:day|week|month|quarter|sprint)\b|\bnext (?:week|month|sprint)\b"
    rf"|\b{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?\b|\bthe \d{{1,2}}(?:st|nd|rd|th)\b",
    re.I,
)
_BY_DEADLINE = re.compile(rf"\bby (?:(?:next|this) )?(?:{_WEEKDAY}|tomorrow|end of)\b", re.I)
_LEADING_CUE = re.compile(
    r"^(?:i will|i'll|i'm going to|i am going to|i can|we need to|we'll need to|we will|we'll"
    r"|let's|let us|(?:can|could|will|would) you(?: please)?)\s+",
    re.I,
)


def _assignee(u: Utterance, participants: Sequence[str]) -> str | None:
    """The other participant the sentence hands work to, or None.

    Checked in order: addressed by name with a request ("Carol, can you…"), named as the doer
    ("Bob will…"), then merely named in a request ("could you ask Dana…" counts for Dana).
    """
    text = clean_sentence(u.text)
    forms = [
        (name, re.escape(form))
        for name in participants
        if name != u.name
        for form in dict.fromkeys((name, name.split()[0]))
    ]
    request = _REQUEST.search(text)
    for name, f in forms:
        if request and (re.match(rf"{f},", text) or re.search(rf",\s*{f}\W*$", text)):
            return name
    for name, f in forms:
        if re.search(rf"\b{f}(?:'ll| will| is going to| can take)\b", text):
            return name
    for name, f in forms:
        if request and re.search(rf"\b{f}\b", text):
            return name
    return None


def _task(u: Utterance, assignee: str) -> str:
    text = clean_sentence(u.text)
    for form in dict.fromkeys((assignee, assignee.split()[0])):
        # "Carol, can you update…" and "Bob will check…" both become the bare task.
        text = re.sub(rf"^{re.escape(form)}(?:,|'ll| will| is going to)\s*", "", text)
    text = FILLER.sub("", text)
    text = _LEADING_CUE.sub("", text).rstrip(".?! ")
    return text[:1].upper() + text[1:]


def action_items(utterances: Sequence[Utterance], participants: Sequence[str]) -> ActionItems:
    decisions: list[Decision] = []
    steps: list[NextStep] = []
    for u in utterances:
        text = u.text
        question = text.rstrip().endswith("?")
        commit = _COMMIT.search(text) and not _MEETING_FLOW.search(text)
        if _DECISION.search(text) and not question:
            sentence = ensure_period(clean_sentence(text))
            decisions.append(Decision(decision=sentence, decided_by=u.name))
            if not commit:
                continue
        other = _assignee(u, participants)
        # A question is a next step only when it asks a named someone to do something.
        if question and other is None:
            continue
        if not (commit or other or _BY_DEADLINE.search(text)):
            continue
        who = other or u.name
        deadline = _DEADLINE.search(text)
        steps.append(
            NextStep(
                task=_task(u, who),
                assigned_to=who,
                deadline=deadline.group(0) if deadline else None,
            )
        )
    return ActionItems(decisions=_dedupe(decisions), next_steps=_dedupe(steps))


def _dedupe(items: list[T]) -> list[T]:
    return list({i.model_dump_json(): i for i in items}.values())
