"""The mixdown's limiter: nothing past the ceiling, nothing changed far from loud moments, smooth
gain changes, and the same samples whatever the block sizes."""

from __future__ import annotations

import numpy as np
import pytest

from reflector_cli.stages.limiter import CEILING, REACH, Limiter

RATE = 48000


def _limit(x: np.ndarray, block: int = RATE) -> tuple[np.ndarray, float]:
    lim = Limiter(RATE)
    parts = [*lim.feed(x[i : i + block] for i in range(0, len(x), block)), *lim.finish()]
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), lim.lowest


@pytest.fixture(scope="module")
def speechlike() -> np.ndarray:
    """20 s of noise at a talking level, a loud 40-ms burst at 5 s and a 2-sample click at 12 s."""
    x = (np.random.default_rng(1).standard_normal(RATE * 20) * 0.1).astype(np.float32)
    x[RATE * 5 : RATE * 5 + 2000] *= 15
    x[RATE * 12 + 7 : RATE * 12 + 9] = 1.7
    return x


def test_nothing_passes_the_ceiling_and_quiet_stretches_are_untouched(
    speechlike: np.ndarray,
) -> None:
    y, lowest = _limit(speechlike)
    assert len(y) == len(speechlike)
    assert float(np.abs(y).max()) <= CEILING
    assert lowest == pytest.approx(CEILING / float(np.abs(speechlike).max()), rel=0.02)
    reach = (2 * REACH + 1) * RATE // 100  # how far a loud frame's ramp reaches
    far = np.ones(len(y), dtype=bool)
    for at in (RATE * 5, RATE * 12):
        far[at - reach : at + 2000 + reach] = False
    assert np.array_equal(y[far], speechlike[far])


def test_the_gain_moves_in_ramps_not_jumps(speechlike: np.ndarray) -> None:
    y, _ = _limit(speechlike)
    loud = np.abs(speechlike) > 0.02  # where the ratio out/in measures the gain precisely
    gain, at = y[loud] / speechlike[loud], np.flatnonzero(loud)
    per_sample = np.abs(np.diff(gain)) / np.diff(at)
    assert float(per_sample.max()) < 0.001  # a full 1 -> 0.1 swing takes > 900 samples


def test_block_sizes_do_not_change_the_samples(speechlike: np.ndarray) -> None:
    x = speechlike[: RATE * 7]
    assert np.array_equal(_limit(x, RATE)[0], _limit(x, 777)[0])


@pytest.mark.parametrize("n", [0, 1, 479, 480, 481, 5000])
def test_any_length_comes_out_whole_and_below_the_ceiling(n: int) -> None:
    y, lowest = _limit(np.full(n, 2.0, np.float32), block=300)
    assert len(y) == n
    if n:
        assert float(np.abs(y).max()) == pytest.approx(CEILING)
        assert lowest == pytest.approx(CEILING / 2.0)


def test_a_lone_impulse_comes_out_at_most_at_the_ceiling() -> None:
    x = np.zeros(4800, np.float32)
    x[2400] = 2.0
    y, _ = _limit(x)
    assert 0.97 < float(np.abs(y).max()) <= CEILING


def test_silence_and_quiet_audio_pass_unchanged() -> None:
    x = np.zeros(RATE * 3, np.float32)
    x[RATE : RATE * 2] = 0.5
    y, lowest = _limit(x)
    assert np.array_equal(y, x) and lowest == 1.0
