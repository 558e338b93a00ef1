"""Whisper weights stored as int8 once per machine, so a worker loads them without quantizing.

CTranslate2 turns a float16 model into int8 at every load: 0.13 of tiny.en's 0.18 s, paid by
every worker of every run. The copy in `models_dir()/.int8/<key>` holds the weights that load
makes (one scale per row, rounded half to even, as CTranslate2 does), and is used only after it
encoded and decoded a fixed input exactly as the original model did.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mmap
import os
import re
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from reflector_cli.core.lock import flock_if_free
from reflector_cli.core.whisper_models import models_dir

log = logging.getLogger(__name__)

# Bump when the written file changes: the key then names a new copy.
FORMAT = 1
# The model.bin layout this writer knows (CTranslate2's binary version 6) and the one spec whose
# rule for which weights are quantized it follows (WhisperModel: "…weight", no convolutions).
BINARY_VERSION = 6
SPEC = "WhisperSpec"
# CTranslate2's DataType ids.
FLOAT32, INT8, FLOAT16 = 0, 1, 4
# In each copy: the source directory it was made from and the CTranslate2 that checked it.
ORIGIN = "origin.json"
COPIED = ("config.json", "preprocessor_config.json", "tokenizer.json", "vocabulary.txt",
          "vocabulary.json")  # fmt: skip


@dataclass(frozen=True)
class Variable:
    """One saved variable: name, shape, CTranslate2 dtype id and its bytes (a view)."""

    name: str
    shape: tuple[int, ...]
    dtype: int
    data: memoryview

    def floats(self) -> np.ndarray:
        kind = np.float16 if self.dtype == FLOAT16 else np.float32
        return np.frombuffer(self.data, kind).astype(np.float32).reshape(self.shape)


class Prepared(NamedTuple):
    """The int8 copy of a model (None: load the original) and a one-line note saying why."""

    path: Path | None
    note: str


def int8_copy(src: Path) -> Path | None:
    """The int8 copy of the CTranslate2 whisper model in `src`, made now if missing; None when
    the caller should load `src` itself (see `prepare`)."""
    return prepare(src).path


def prepare(src: Path) -> Prepared:
    """Find or make the int8 copy of `src`. None when the model does not qualify or its copy
    failed the check (remembered in `<key>.rejected`), another process is writing the copy right
    now, the cache is not this user's alone, or it could not be written (read-only cache, full
    disk: tried again next time)."""
    try:
        root, key = _root(), _key(src)
        if root is None:
            return Prepared(None, f"{models_dir() / '.int8'} is not private to this user")
        target = root / key
        if (target / "model.bin").is_file():
            return Prepared(target, "ready")
        if (rejected := root / f"{key}.rejected").is_file():
            return Prepared(None, rejected.read_text().strip())
        return _prepare(src, root, key)
    except OSError as exc:
        log.debug("no int8 copy of %s: %s", src, exc)
        return Prepared(None, f"not written ({exc.strerror or exc})")


def _root() -> Path | None:
    """The copies' directory, made private; None when another user owns it or may write to it
    (weights planted there would be loaded as ours)."""
    root = models_dir() / ".int8"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = root.stat()
    return root if st.st_uid == os.getuid() and not st.st_mode & 0o022 else None


def _key(src: Path) -> str:
    import ctranslate2

    parts = [str(FORMAT), ctranslate2.__version__, str(src.resolve())]
    for name in ("model.bin", *COPIED):
        with contextlib.suppress(FileNotFoundError):
            st = (src / name).stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}")
    # No dots in a key: "<key>.lock", "<key>.rejected" and "<key>.<pid>.tmp" split at the first.
    name = re.sub(r"[^A-Za-z0-9_-]", "_", src.name)
    return f"{name}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:16]}"


def _origin(src: Path) -> str:
    """What a copy records about where it came from: the source path and the CTranslate2 that
    checked it (another version's copy of the same source is another install's, kept)."""
    import ctranslate2

    return json.dumps({"source": str(src.resolve()), "ctranslate2": ctranslate2.__version__})


def _prepare(src: Path, root: Path, key: str) -> Prepared:
    target = root / key
    with flock_if_free(root / f"{key}.lock") as held:
        if not held:
            return Prepared(None, "another process is writing it")
        if (target / "model.bin").is_file():
            return Prepared(target, "ready")
        # A killed writer's staging, or a copy half removed by hand.
        for stale in [*root.glob(f"{key}.*.tmp"), target]:
            shutil.rmtree(stale, ignore_errors=True)
        staging = root / f"{key}.{os.getpid()}.tmp"
        staging.mkdir()
        try:
            why = _checked_stage(src, staging)
            if why is None:
                (staging / ORIGIN).write_text(_origin(src))
                staging.rename(target)
                _drop_older(root, target)
                return Prepared(target, "written")
            _write_atomically(root / f"{key}.rejected", why + "\n")
            log.info("model %s: no int8 copy (%s)", src, why)
            return Prepared(None, why)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _checked_stage(src: Path, staging: Path) -> str | None:
    """`_stage`, with any failure but the disk's a reason not to copy this model (remembered,
    so no run tries again); the disk's failures propagate (tried again next time)."""
    try:
        return _stage(src, staging)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model the copy cannot handle loads as it is
        return f"could not be checked ({type(exc).__name__}: {exc})".splitlines()[0]


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _drop_older(root: Path, kept: Path) -> None:
    """Remove copies of the same source checked by the same CTranslate2 under an older key
    (the source was reinstalled: other sizes or times), and staging left by killed writers;
    each only while no process holds its key's lock. One copy per model, not one per upgrade."""
    origin = (kept / ORIGIN).read_text()
    for other in root.iterdir():
        key = other.name.split(".", 1)[0]
        if other == kept or not other.is_dir() or key == kept.name:
            continue
        with contextlib.suppress(OSError), flock_if_free(root / f"{key}.lock") as held:
            stale = other.name.endswith(".tmp") or (other / ORIGIN).read_text() == origin
            if held and stale:
                doomed = other.with_name(f"{other.name}.{os.getpid()}.tmp")
                other.rename(doomed)  # never seen half-removed under its own name
                shutil.rmtree(doomed)


def _stage(src: Path, staging: Path) -> str | None:
    """Write the copy into `staging` and check it; None when it is good, else why not."""
    for name in COPIED:
        if (src / name).is_file():
            shutil.copyfile(src / name, staging / name)
    try:
        spec, revision, variables, aliases = _read(_mapped(src / "model.bin"))
    except (ValueError, struct.error) as exc:
        return f"model.bin not readable as binary version {BINARY_VERSION} ({exc})"
    if spec != SPEC:
        return f"spec {spec}, not {SPEC}"
    with open(staging / "model.bin", "wb") as out:
        quantized = _write(out, spec, revision, variables, aliases)
    if not quantized:
        return "no float weights to quantize"
    return None if _same_outputs(src, staging) else "outputs differ from the original's"


def _mapped(path: Path) -> memoryview:
    """The file, mapped read-only; the map closes when the last view of it goes (an explicit
    close would fail while variables still point into it)."""
    with open(path, "rb") as fh:
        return memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))


def _read(buf: memoryview) -> tuple[str, int, list[Variable], list[tuple[str, str]]]:
    pos = 0

    def take(fmt: str) -> tuple[int, ...]:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def text() -> str:
        nonlocal pos
        (size,) = take("H")  # with its trailing NUL
        pos += size
        return bytes(buf[pos - size : pos - 1]).decode()

    (version,) = take("I")
    if version != BINARY_VERSION:
        raise ValueError(f"binary version {version}, not {BINARY_VERSION}")
    spec = text()
    (revision,) = take("I")
    variables = []
    for _ in range(take("I")[0]):
        name = text()
        (rank,) = take("B")
        shape = take(f"{rank}I")
        dtype, size = take("BI")
        pos += size
        variables.append(Variable(name, shape, dtype, buf[pos - size : pos]))
    aliases = [(text(), text()) for _ in range(take("I")[0])]
    if pos != len(buf):
        raise ValueError(f"{len(buf) - pos} bytes after the aliases")
    return spec, revision, variables, aliases


def _write(
    out: BinaryIO,
    spec: str,
    revision: int,
    variables: list[Variable],
    aliases: list[tuple[str, str]],
) -> int:
    """Write model.bin as an int8 load would hold it, one variable at a time; returns how many
    weights were quantized (each gains a `<name>_scale` variable)."""

    def text(value: str) -> bytes:
        raw = value.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    quantized = sum(1 for var in variables if _quantized(var))
    out.write(struct.pack("<I", BINARY_VERSION) + text(spec) + struct.pack("<I", revision))
    out.write(struct.pack("<I", len(variables) + quantized))
    for name, shape, dtype, data in _as_loaded(variables):
        out.write(text(name) + struct.pack(f"<B{len(shape)}I", len(shape), *shape))
        out.write(struct.pack("<BI", dtype, len(data)))
        out.write(data)
    out.write(struct.pack("<I", len(aliases)))
    for alias, name in aliases:
        out.write(text(alias) + text(name))
    return quantized


def _quantized(var: Variable) -> bool:
    """CTranslate2's rule for whisper: float weights whose name ends in "weight", convolutions
    excepted, become int8."""
    floating = bool(var.shape) and var.dtype in (FLOAT16, FLOAT32)
    return floating and var.name.endswith("weight") and "conv" not in var.name


def _as_loaded(variables: list[Variable]) -> Iterator[tuple[str, tuple[int, ...], int, bytes]]:
    """Each variable as an int8 load holds it: quantized weights with their scales, other
    floats as float32, the rest as saved."""
    for var in variables:
        if not var.shape or var.dtype not in (FLOAT16, FLOAT32):
            yield var.name, var.shape, var.dtype, bytes(var.data)
        elif not _quantized(var):
            yield var.name, var.shape, FLOAT32, var.floats().tobytes()
        else:
            rows = var.floats().reshape(var.shape[0], -1)
            amax = np.abs(rows).max(axis=1)
            amax[amax == 0] = 127.0
            amax = np.maximum(amax, np.float32(127) / np.finfo(np.float32).max)
            scale = (np.float32(127.0) / amax).astype(np.float32)
            weights = np.rint(rows * scale[:, None]).astype(np.int8)
            yield var.name, var.shape, INT8, weights.tobytes()
            yield var.name + "_scale", scale.shape, FLOAT32, scale.tobytes()


def _same_outputs(src: Path, copy: Path) -> bool:
    """Both models, loaded for int8 on the CPU one after the other, encode a fixed input to the
    same values and decode it to the same tokens with the same scores."""
    import ctranslate2
    from tokenizers import Tokenizer

    if not (src / "tokenizer.json").is_file():
        raise ValueError("no tokenizer.json to decode with")
    start = Tokenizer.from_file(str(src / "tokenizer.json")).token_to_id("<|startoftranscript|>")
    if start is None:
        raise ValueError("the tokenizer has no <|startoftranscript|>")
    features: np.ndarray | None = None
    outputs = []
    for path in (src, copy):
        model = ctranslate2.models.Whisper(
            str(path), device="cpu", compute_type="int8", intra_threads=1
        )
        if features is None:
            rng = np.random.default_rng(0)
            features = rng.standard_normal((1, model.n_mels, 3000), dtype=np.float32)
        view = ctranslate2.StorageView.from_array(features)
        encoded = np.array(model.encode(view))
        result = model.generate(view, [[start]], max_length=24, return_scores=True)[0]
        outputs.append((encoded, result.sequences_ids, result.scores))
        del model, view  # one model resident at a time
    (enc_a, ids_a, scores_a), (enc_b, ids_b, scores_b) = outputs
    return bool(np.array_equal(enc_a, enc_b)) and ids_a == ids_b and scores_a == scores_b
