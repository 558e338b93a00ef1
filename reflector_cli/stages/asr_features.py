"""Whisper's log-Mel features in bounded memory, bit for bit what faster-whisper computes.

faster-whisper's FeatureExtractor turns a whole decode's audio into windowed frames, a complex
spectrum and its copies at once: ~250 MB for a 5-minute group. Here the frames are transformed
a block at a time into one power-spectrum array (the only full-size buffer, 24 MB for 5
minutes); the Mel product, the log and the clamp to the global maximum then run on it exactly
as upstream does, so every feature value is identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

# Spectrum frames per block (30 s of audio: ~10 MB of frames and spectrum at a time).
BLOCK_FRAMES = 3000


class BoundedFeatures(FeatureExtractor):
    """A drop-in FeatureExtractor whose transient memory does not grow with the audio."""

    @classmethod
    def like(cls, upstream: FeatureExtractor) -> BoundedFeatures:
        """A bounded extractor with `upstream`'s settings (mel filters, hop, chunk length)."""
        out = cls.__new__(cls)
        out.__dict__.update(upstream.__dict__)
        return out

    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: Any = None):
        if chunk_length is not None:
            self.n_samples = chunk_length * self.sampling_rate
            self.nb_max_frames = self.n_samples // self.hop_length
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.size + padding <= self.n_fft:  # numpy's reflect would fold more than once
            return super().__call__(waveform, padding=padding)
        power = self._power(self._centred(waveform, padding))
        # Same layout and values as upstream's `np.abs(stft[..., :-1]) ** 2`: one BLAS call on
        # identical operands gives identical sums (per-block products would not).
        mel_spec = self.mel_filters @ power
        log_spec = np.log10(np.clip(mel_spec, a_min=1e-10, a_max=None))
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0

    def _centred(self, waveform: np.ndarray, padding: int) -> np.ndarray:
        """`waveform` + `padding` zeros, reflect-padded by n_fft // 2 on both sides, in one
        buffer (upstream's two np.pad calls copy it twice)."""
        half, n = self.n_fft // 2, waveform.size
        x = np.empty(n + padding + 2 * half, dtype=np.float32)
        x[half : half + n] = waveform
        x[half + n : half + n + padding] = 0.0
        x[:half] = x[2 * half : half : -1]
        x[-half:] = x[-half - 2 : -2 * half - 2 : -1]
        return x

    def _power(self, x: np.ndarray) -> np.ndarray:
        """|STFT|² of every frame but the last, as a (freqs, frames) view like upstream's."""
        hop, n_fft = self.hop_length, self.n_fft
        window = np.hanning(n_fft + 1)[:-1].astype("float32")
        frames = 1 + (x.size - n_fft) // hop - 1  # upstream drops the last frame
        power = np.empty((frames, n_fft // 2 + 1), dtype=np.float32)
        step = x.strides[0]
        for f0 in range(0, frames, BLOCK_FRAMES):
            k = min(BLOCK_FRAMES, frames - f0)
            block = np.lib.stride_tricks.as_strided(
                x[f0 * hop :], (k, n_fft), (hop * step, step), writeable=False
            )
            spectrum = np.fft.rfft(block * window, n=n_fft, axis=-1).astype("complex64")
            power[f0 : f0 + k] = np.abs(spectrum) ** 2
        return power.T
