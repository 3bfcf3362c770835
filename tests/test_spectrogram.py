"""classify.pages.spectrogram and classify.pages.wav: what the pages show and play, without TensorFlow."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from classify.pages.spectrogram import (
    Spectrogram,
    log_stft_spectrogram,
    mel_spectrogram,
)
from classify.pages.wav import write_wav

REPO = Path(__file__).resolve().parents[1]
SR = 22050


def test_spectrograms_shapes_floor_and_short_clips():
    tone = np.sin(2 * np.pi * 440 * np.arange(SR) / SR).astype(np.float32)
    stft = log_stft_spectrogram(tone, SR)
    mel = mel_spectrogram(tone, SR)
    assert stft.db.shape == (256, 44) and stft.scale == "log" and stft.f_max == SR / 2
    assert mel.db.shape == (128, 44) and mel.scale == "mel"
    assert -6 < stft.db.max() <= 0 and stft.db.min() >= -80.5
    peak_row = int(np.argmax(stft.db.mean(axis=1)))
    peak_hz = np.geomspace(stft.f_min, stft.f_max, 256)[peak_row]
    assert 380 < peak_hz < 500
    assert np.all(mel_spectrogram(np.zeros(SR, np.float32), SR).db == -80)
    short = log_stft_spectrogram(tone[:300], SR)
    assert short.db.shape[0] == 256 and np.isfinite(short.db).all()


def test_spectrogram_rejects_what_cannot_be_drawn():
    with pytest.raises(ValueError, match="scale='linear'"):
        Spectrogram(np.zeros((2, 2)), 1.0, 10.0, 100.0, "linear")
    with pytest.raises(ValueError, match="f_min=0"):
        Spectrogram(np.zeros((2, 2)), 1.0, 0, 100.0, "log")


def test_write_wav_is_16_bit_mono_and_clips_overshoot(tmp_path):
    path = tmp_path / "sub" / "a.wav"
    write_wav(path, np.array([0.0, 0.5, 1.7, -3.0], dtype=np.float64), SR)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (SR, 1, "PCM_16", "WAV")
    y, _ = sf.read(str(path))
    assert y.max() <= 1.0 and y.min() == -1.0 and y[2] > 0.99
    assert [p.name for p in path.parent.iterdir()] == ["a.wav"], "no temporary file left"


def test_display_audio_modules_import_neither_tensorflow_nor_the_training_code():
    code = ("import sys, classify.pages.spectrogram, classify.pages.wav, numpy as np\n"
            "classify.pages.spectrogram.mel_spectrogram(np.zeros(4096, 'float32'), 22050)\n"
            "bad = [m for m in ('tensorflow', 'keras', 'classify.training', 'classify.models') if m in sys.modules]\n"
            "sys.exit(f'imported {bad}' if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
