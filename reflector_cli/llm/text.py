"""Plain-text helpers for the offline backend: stop words, terms, cleaning spoken sentences."""

from __future__ import annotations

import re
from collections.abc import Sequence

from reflector_cli.llm.base import Utterance


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


EN_STOP_WORDS = _wordset(
    """a about above actually after again against all almost also although always am among an
    and another any anybody anyone anything anyway are around as ask at away back be because
    been before being below between bit both but by can cannot come could did do does doing
    done down during each either else enough even ever every everyone everything exactly few
    first for from further get gets getting give go goes going gonna good got gotta great had
    has have having he her here hers him his how however i if in into is it its itself just
    kind kinda know last least less let like likely little look lot lots make makes many may
    maybe me mean might mine more most much must my myself need needs never new next no nobody
    none nor not nothing now of off oh ok okay on once one only or other others our ours out
    over own part perhaps pretty probably put quite rather really right said same say says see
    seem seems should since so some somebody someone something sort still such sure take talk
    than thank thanks that the their them then there these they thing things think this those
    though through thus to today together too totally um uh up upon us use used very via want
    wanted was way we well went were what whatever when where whether which while who whole
    whom whose why will wish with within without would yeah yep yes yet you your yours
    yourself"""
)
FR_STOP_WORDS = _wordset(
    """au aux avec avoir bon bien ça car ce ceci cela celle celui ces cet cette chez comme
    comment dans de des donc dont du elle elles en encore est et été être eu fait faire il ils
    je la le les leur leurs lui ma mais me même mes moi mon ne ni non nos notre nous on ont ou
    où oui par pas peu peut plus pour pourquoi quand que quel quelle quelles quels qui sa sans
    se ses si son sont sous sur ta te tes toi ton tous tout toute toutes très tu un une vos
    votre vous voilà alors aussi après avant bah ben euh oh voici déjà ici là était étaient
    sera serait suis sommes êtes avons avez faut va vais vont aujourd'hui"""
)
DE_STOP_WORDS = _wordset(
    """aber alle allem allen aller alles als also am an auch auf aus bei bin bis bist da damit
    dann das dass dem den denn der des dich die dir doch dort du durch ein eine einem einen
    einer eines er es etwas euch euer für gegen gibt hab habe haben hat hatte hier ich ihm ihn
    ihr ihre im immer in ist ja jetzt kann kein keine können mal man mehr mein meine mich mir
    mit muss nach nicht nichts noch nun nur ob oder ohne schon sehr sein seine sich sie sind so
    soll über um und uns unser unter vom von vor war waren was weil wenn werden wie wir wird
    wo wollen zu zum zur äh ähm also genau okay heute"""
)
ES_STOP_WORDS = _wordset(
    """a al algo como con cual cuando de del desde donde el ella ellas ellos en entre era es
    esa ese eso esta está están este esto estos fue ha hay la las le les lo los más me mi muy
    nada ni no nos nosotros o otra otro para pero poco por porque que qué se ser si sí sin
    sobre son su sus también tan te tengo tiene todo todos tu tú un una uno unos usted ustedes
    vamos y ya yo bueno pues entonces hoy eh"""
)
# The offline backend is not told the meeting's language (a meeting may mix several), so a
# stop word of any supported language is a stop word: English never decides alone.
STOP_WORDS = EN_STOP_WORDS | FR_STOP_WORDS | DE_STOP_WORDS | ES_STOP_WORDS
# French/Italian elisions ("l'équipe", "d'abord"): the term is what follows the apostrophe.
ELISION = re.compile(r"^(?:l|d|j|qu|n|s|c|m|t)'(?=\w)")
# Words that make a meeting title say nothing about this particular meeting.
GENERIC_TITLE_WORDS = _wordset(
    "team meeting meetings discussion discussions untitled sync call weekly daily standup "
    "stand-up update updates chat general misc notes check-in checkin catch-up recap"
)

# Letters of any script (not just ASCII), so "préparons" stays one word.
TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
FILLER = re.compile(
    r"^(?:(?:so|um+|uh+|okay|ok|yeah|yes|well|and|right|alright|oh|anyway|great|good|sure|fair"
    r"|fine|cool)[,.!]?\s+)+",
    re.I,
)
INNER_FILLER = re.compile(r"\b(?:um+|uh+)[,.]?\s+", re.I)


def content_term(token: str) -> str | None:
    """Lower-cased content term, or None for stop words, contractions, numbers, tiny words."""
    t = token.lower().replace("’", "'")
    t = ELISION.sub("", t.removesuffix("'s"))
    if "'" in t or len(t) < 3 or t.isdigit() or t in STOP_WORDS:
        return None
    return t


def terms(text: str) -> list[str]:
    """Unigrams plus bigrams of adjacent content words (a stop word breaks a bigram)."""
    norm = [content_term(t) for t in TOKEN.findall(text)]
    out = [t for t in norm if t]
    out += [f"{a} {b}" for a, b in zip(norm, norm[1:], strict=False) if a and b]
    return out


def clean_sentence(text: str) -> str:
    """Drop spoken fillers at the start and um/uh inside; capitalise; keep the punctuation."""
    out = INNER_FILLER.sub("", FILLER.sub("", text.strip())).strip()
    if not out:
        return text.strip()
    return out[0].upper() + out[1:]


def ensure_period(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def attributed(u: Utterance) -> str:
    return f"{u.name}: {ensure_period(clean_sentence(u.text))}"


def join_names(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def is_generic_title(title: str | None) -> bool:
    """True when a title carries no meeting-specific word ("Team Meeting", "Untitled")."""
    if not title:
        return True
    words = {w.lower() for w in TOKEN.findall(title)}
    return not (words - GENERIC_TITLE_WORDS - STOP_WORDS)
