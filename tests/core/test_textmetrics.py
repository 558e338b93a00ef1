"""WER on small hand-checked cases."""

from reflector_cli.textmetrics import normalize_words, word_error_rate


def test_normalization_ignores_case_and_punctuation() -> None:
    assert normalize_words(["Friday.", "it's", "OK!"]) == ["friday", "it's", "ok"]


def test_wer_counts_substitutions_insertions_deletions() -> None:
    ref = ["the", "cat", "sat", "down"]
    assert word_error_rate(ref, ref) == 0.0
    assert word_error_rate(ref, ["the", "dog", "sat", "down"]) == 0.25
    assert word_error_rate(ref, ["the", "cat", "sat"]) == 0.25
    assert word_error_rate(ref, ["the", "cat", "sat", "down", "now"]) == 0.25
    assert word_error_rate([], []) == 0.0 and word_error_rate([], ["x"]) == 1.0
