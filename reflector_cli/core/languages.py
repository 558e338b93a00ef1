"""The spoken language of a run: flag > manifest / Daily room > REFLECTOR_LANGUAGE > `en`,
checked against what the model can do before anything is stored.
"""

from __future__ import annotations

import json
from pathlib import Path

from reflector_cli.core.config import Settings, default_model_path
from reflector_cli.core.errors import UserError

AUTO = "auto"
# Multilingual whisper vocabularies have 51865+ tokens; English-only ones 51864.
MULTILINGUAL_VOCAB = 51865


def resolve_language(settings: Settings, recording_language: str | None) -> str:
    """The run's language code (or `auto`), validated, in the documented precedence."""
    chosen = settings.language_flag or recording_language or settings.language or "en"
    code = chosen.strip().lower()
    # English needs no lookup (importing the table loads all of faster-whisper).
    if code not in (AUTO, "en") and code not in _whisper_codes():
        raise UserError(
            f"language {chosen!r}: not a language whisper knows (use a code like en, fr, de, "
            f"or auto)"
        )
    return code


def _whisper_codes() -> frozenset[str]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


def model_name(model: str) -> str:
    """How a model is named in messages: the bundled default is `tiny.en`."""
    if model == default_model_path():
        return "tiny.en"
    return Path(model).name or model


def english_only(model: str) -> bool:
    """From the model directory's vocabulary size (no model load), or a `.en` name."""
    path = Path(model).expanduser()
    vocab_txt, vocab_json = path / "vocabulary.txt", path / "vocabulary.json"
    if vocab_txt.is_file():
        with vocab_txt.open("rb") as fh:
            return sum(1 for _ in fh) < MULTILINGUAL_VOCAB
    if vocab_json.is_file():
        return len(json.loads(vocab_json.read_text(encoding="utf-8"))) < MULTILINGUAL_VOCAB
    return model_name(model).endswith(".en")


def check_model_language(model: str, language: str) -> None:
    """Refuse a language the model cannot transcribe (anything but English on a `.en` model)."""
    if language in ("en", AUTO) or not english_only(model):
        return
    raise UserError(
        f"language {language!r} needs a multilingual model; {model_name(model)} is English-only "
        f"(use --model PATH)"
    )
