"""Offline-summary text helpers in other languages: no English-only stop words, whole words."""

from __future__ import annotations

from reflector_cli.llm.base import Utterance
from reflector_cli.llm.text import terms
from reflector_cli.llm.tfidf import Corpus

FRENCH = [
    "Aujourd'hui nous préparons le lancement du nouveau tableau de bord.",
    "Le plus grand risque est la migration de la base de données.",
    "La migration de la base de données prendra deux heures samedi.",
]
OTHER = ["Nous parlons ensuite du budget et des serveurs.", "Le budget pour les serveurs."]


def test_french_german_spanish_stop_words_are_not_terms() -> None:
    assert terms("Le plus grand risque est la migration de l'équipe") == [
        "grand",
        "risque",
        "migration",
        "équipe",
        "grand risque",
    ]
    assert terms("Wir müssen die Datenbank heute migrieren") == [
        "müssen",
        "datenbank",
        "migrieren",
    ]
    assert terms("Tenemos que migrar la base de datos") == ["tenemos", "migrar", "base", "datos"]


def _utts(texts: list[str]) -> list[Utterance]:
    return [
        Utterance(speaker=0, name="Claire", start=i, end=i + 1, text=t, word_start=i, word_end=i)
        for i, t in enumerate(texts)
    ]


def test_french_keyphrases_are_content_words() -> None:
    corpus = Corpus([_utts(FRENCH), _utts(OTHER)])
    phrases = [p.lower() for p in corpus.keyphrases(0, 2)]
    words = {w for p in phrases for w in p.split()}
    assert phrases and not words & {"la", "de", "le", "est", "du"}
    assert any("migration" in p or "données" in p for p in phrases), phrases
