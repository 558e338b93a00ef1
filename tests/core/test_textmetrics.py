"""WER on small hand-checked cases."""

from reflector_cli.core.textmetrics import normalize_words, word_error_rate


def test_normalization_ignores_case_and_punctuation() -> None:
    assert normalize_words(["Friday.", "it's", "OK!"]) == ["friday", "it's", "ok"]


def test_wer_counts_substitutions_insertions_deletions() -> None:
    ref = ["the", "cat", "sat", "down"]
    assert word_error_rate(ref, ref) == 0.0
    assert word_error_rate(ref, ["the", "dog", "sat", "down"]) == 0.25
    assert word_error_rate(ref, ["the", "cat", "sat"]) == 0.25
    assert word_error_rate(ref, ["the", "cat", "sat", "down", "now"]) == 0.25
    assert word_error_rate([], []) == 0.0 and word_error_rate([], ["x"]) == 1.0


def _reference_distance(ref: list[str], hyp: list[str]) -> int:
    """The textbook dynamic programme, to check the library against."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[len(hyp)]


def test_library_distance_equals_the_textbook_one_on_random_word_lists() -> None:
    import random

    from reflector_cli.core.textmetrics import edit_distance

    rng = random.Random(7)
    vocab = ["a", "b", "c", "it's", "d"]
    for _ in range(200):
        ref = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        assert edit_distance(ref, hyp) == _reference_distance(ref, hyp), (ref, hyp)
    # Whole words are compared, never characters inside them.
    assert edit_distance(["abc"], ["abd"]) == 1
