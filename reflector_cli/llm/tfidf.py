"""TF-IDF over a meeting's chunks: keyphrases per chunk and its most central sentences."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from reflector_cli.llm.base import Utterance
from reflector_cli.llm.text import TOKEN, content_term, terms


class Corpus:
    """TF-IDF over documents (lists of utterances); each document is one chunk or subject."""

    def __init__(self, docs: Sequence[Sequence[Utterance]]) -> None:
        self.docs = docs
        counts = [Counter(t for u in doc for t in terms(u.text)) for doc in docs]
        self.vocab = sorted(set().union(*counts)) if counts else []
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.tf = np.zeros((len(docs), len(self.vocab)))
        for d, c in enumerate(counts):
            for term, n in c.items():
                self.tf[d, self.index[term]] = n
        df = (self.tf > 0).sum(axis=0)
        # Smoothed idf keeps a term present in every chunk positive (one-chunk meetings work).
        self.idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
        self.weights = self._weigh(self.tf)
        self.surface = self._surface_forms(u for doc in docs for u in doc)

    def _weigh(self, tf: np.ndarray) -> np.ndarray:
        # Sublinear tf: a word said ten times is not ten times as topical as one said once.
        return np.where(tf > 0, 1.0 + np.log(np.maximum(tf, 1.0)), 0.0) * self.idf

    @staticmethod
    def _surface_forms(utterances: Iterable[Utterance]) -> dict[str, str]:
        """Most frequent spelling of each term, so "API" and "iOS" keep their case in titles."""
        seen: dict[str, Counter[str]] = {}
        for u in utterances:
            for tok in TOKEN.findall(u.text):
                key = content_term(tok)
                if key:
                    seen.setdefault(key, Counter())[tok.replace("’s", "").removesuffix("'s")] += 1
        return {k: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for k, c in seen.items()}

    def vector(self, utterances: Iterable[Utterance]) -> np.ndarray:
        tf = np.zeros(len(self.vocab))
        for u in utterances:
            for term in terms(u.text):
                i = self.index.get(term)
                if i is not None:
                    tf[i] += 1
        return self._weigh(tf)

    def keyphrases(self, d: int, k: int = 2) -> list[str]:
        """Top `k` non-overlapping phrases of document `d`; bigrams need two mentions."""
        scored = []
        for i in np.flatnonzero(self.tf[d]):
            term = self.vocab[i]
            bigram = " " in term
            if bigram and self.tf[d, i] < 2:
                continue
            scored.append((-(self.weights[d, i] * (1.5 if bigram else 1.0)), term))
        picked: list[str] = []
        for _, term in sorted(scored):
            words = set(term.split())
            if any(words & set(p.split()) for p in picked):
                continue
            picked.append(term)
            if len(picked) == k:
                break
        return [self.title_case(p) for p in picked]

    def title_case(self, phrase: str) -> str:
        out = []
        for w in phrase.split():
            s = self.surface.get(w, w)
            out.append(s if any(c.isupper() for c in s[1:]) else s[:1].upper() + s[1:].lower())
        return " ".join(out)

    def central(self, utterances: Sequence[Utterance], target: np.ndarray, k: int) -> list[int]:
        """Indices (time order) of `k` sentences most like `target`, avoiding near-repeats."""
        pool = [i for i, u in enumerate(utterances) if 6 <= len(u.text.split()) <= 50]
        pool = pool or list(range(len(utterances)))
        vecs = {i: self.vector([utterances[i]]) for i in pool}
        sims = {i: cosine(vecs[i], target) for i in pool}
        chosen: list[int] = []
        while pool and len(chosen) < k:
            # Maximal marginal relevance: central, but not a paraphrase of what is already in.
            def mmr(i: int) -> tuple[float, int]:
                redundancy = max((cosine(vecs[i], vecs[j]) for j in chosen), default=0.0)
                return (round(0.75 * sims[i] - 0.25 * redundancy, 12), -i)

            best = max(pool, key=mmr)
            chosen.append(best)
            pool.remove(best)
        return sorted(chosen)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na and nb else 0.0
