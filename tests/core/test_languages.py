"""The run's language: flag > manifest > REFLECTOR_LANGUAGE > en, and the English-only refusal."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reflector_cli.core.config import default_model_path, load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.core.languages import check_model_language, english_only, resolve_language

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import multilingual_model  # noqa: E402  (a script: importable only via sys.path)


def test_flag_beats_manifest_beats_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFLECTOR_LANGUAGE", raising=False)
    assert resolve_language(load_settings(), None) == "en"
    monkeypatch.setenv("REFLECTOR_LANGUAGE", "es")
    assert resolve_language(load_settings(), None) == "es"
    assert resolve_language(load_settings(), "fr") == "fr"
    assert resolve_language(load_settings(language="de"), "fr") == "de"
    assert resolve_language(load_settings(language="AUTO"), "fr") == "auto"


def test_an_unknown_language_code_is_refused_in_one_line() -> None:
    with pytest.raises(UserError, match=r"language 'klingon': not a language whisper knows"):
        resolve_language(load_settings(language="klingon"), None)


def test_english_only_is_read_from_the_model_directory() -> None:
    assert english_only(default_model_path())
    assert not english_only(str(multilingual_model.assemble()))
    assert english_only("tiny.en") and not english_only("small")


def test_a_language_the_model_cannot_do_is_refused_naming_both() -> None:
    with pytest.raises(UserError) as exc:
        check_model_language(default_model_path(), "fr")
    assert str(exc.value) == (
        "language 'fr' needs a multilingual model; tiny.en is English-only (use --model PATH)"
    )
    check_model_language(default_model_path(), "en")
    check_model_language(default_model_path(), "auto")
    check_model_language(str(multilingual_model.assemble()), "fr")
