"""A hand-written three-person product meeting, turned into a TranscriptDoc with timings.

Words get 0.32 s each, sentences 0.25 s apart, speaker turns 0.6 s, and a 3 s silence
between the three subjects (release, onboarding, pricing), like a real call's lulls.
"""

from __future__ import annotations

from reflector_cli.core.models import Participant, ParticipantsOut, TranscriptDoc, Word
from reflector_cli.stages.transcript import build_segments

NAMES = ["Alice Moreno", "Bob Chen", "Carol Diaz"]
BREAK = None  # marks a long pause between subjects

SCRIPT: list[tuple[int, str] | None] = [
    (
        0,
        "Okay, thanks everyone for joining. Let's start with the mobile release, because the "
        "date is getting close and I want to know where the crash reports stand.",
    ),
    (
        1,
        "Sure. So the crash reports from the beta are mostly one problem. The Android build "
        "crashes when the photo upload runs on a slow network. About sixty percent of all "
        "crash reports come from that photo upload path.",
    ),
    (0, "Is that the same photo upload crash we saw last sprint, or a new one?"),
    (
        1,
        "It is the same crash, but the retry logic made it worse. When the upload times out "
        "we retry the upload without cancelling the first request, and the app runs out of "
        "memory. I already have a fix for the retry logic in review.",
    ),
    (
        2,
        "From the testing side I can confirm the crash. On the slow network profile the photo "
        "upload fails almost every time. On a normal network the release candidate looks "
        "stable and the crash reports drop to almost nothing.",
    ),
    (
        0,
        "Good. Then the question is the release date. We promised the release for March "
        "seventh, but I would rather ship a stable build a week later than ship the crash.",
    ),
    (
        1,
        "I agree. The fix needs two more days of testing on the slow network profile, and "
        "the app store review takes another three days.",
    ),
    (
        0,
        "Then we decided to move the mobile release to March 14th. I'll tell the support "
        "team about the new release date tomorrow.",
    ),
    (1, "I will merge the retry logic fix and send the crash report summary by Thursday."),
    (2, "And I'll run the full regression suite on the release candidate once the fix lands."),
    BREAK,
    (
        0,
        "Next subject is the onboarding redesign. Carol, you ran the usability sessions last "
        "week. What did the onboarding sessions show?",
    ),
    (
        2,
        "We ran eight usability sessions. Most people got stuck on the permissions screen. "
        "The onboarding asks for contacts, location and notifications before the user has "
        "seen a single feature, and five of the eight people just closed the app there.",
    ),
    (
        1,
        "That matches the funnel data. The biggest drop in the onboarding funnel is exactly "
        "the permissions screen, around forty percent of new users leave at that step.",
    ),
    (
        2,
        "My proposal is to remove the permissions screen from onboarding entirely and ask "
        "for each permission in context, when the user first needs it. For example we ask "
        "for location only when someone opens the map.",
    ),
    (
        0,
        "I like that. It also makes the onboarding shorter. How much work is the onboarding "
        "redesign for engineering?",
    ),
    (
        1,
        "The permission prompts in context are easy. The harder part is the onboarding "
        "tutorial screens, because they are built with the old layout system. I would "
        "estimate one sprint for the whole onboarding redesign.",
    ),
    (
        0,
        "Okay. We agreed to drop the permissions screen and ask for permissions in context. "
        "Carol, can you update the onboarding mockups by Friday so Bob can estimate properly?",
    ),
    (2, "Yes, I can do that. I'll share the onboarding mockups in the design channel."),
    BREAK,
    (
        0,
        "Last subject is the pricing page. Sales keeps telling me that customers are confused "
        "by the pricing tiers, especially the difference between the team plan and the "
        "business plan.",
    ),
    (
        1,
        "The pricing page lists twenty features for each plan, and most of them are the "
        "same. Nobody can see what the business plan actually adds.",
    ),
    (
        2,
        "We could show only the features that differ between the pricing tiers and move the "
        "full comparison table below. I have seen that work well on other pricing pages.",
    ),
    (
        0,
        "That sounds right. I also want an annual billing toggle on the pricing page, since "
        "annual billing is what finance asked for this quarter.",
    ),
    (
        1,
        "The annual billing toggle needs a change in the billing service, so that is not "
        "only a pricing page change. We need to check the billing service with finance "
        "before we promise anything.",
    ),
    (
        0,
        "Fair. Bob will check the billing service changes with finance next week. Let's "
        "review the pricing page draft in our next meeting.",
    ),
    (2, "Great, I will draft the new pricing page layout with the simplified pricing tiers."),
    (0, "Thanks everyone, that is all for today."),
]

WORD_S, SENTENCE_GAP_S, TURN_GAP_S, BREAK_S = 0.32, 0.25, 0.6, 3.0


def build_words(script: list[tuple[int, str] | None] = SCRIPT) -> list[Word]:
    words: list[Word] = []
    t = 1.0
    for line in script:
        if line is None:
            t += BREAK_S
            continue
        speaker, text = line
        if words and words[-1].speaker != speaker:
            t += TURN_GAP_S
        for token in text.split():
            words.append(
                Word(text=token, start=round(t, 3), end=round(t + 0.28, 3), speaker=speaker)
            )
            t += WORD_S
            if token.endswith((".", "?", "!")):
                t += SENTENCE_GAP_S
    return words


def build_doc(script: list[tuple[int, str] | None] = SCRIPT) -> TranscriptDoc:
    words = build_words(script)
    return TranscriptDoc(words=words, segments=build_segments(words))


def participants(names: list[str] = NAMES) -> ParticipantsOut:
    return ParticipantsOut(
        participants=[
            Participant(speaker=i, participant_id=f"p{i}", name=n, track_key=f"rec/tracks/{i}.webm")
            for i, n in enumerate(names)
        ]
    )
