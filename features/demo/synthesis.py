"""Synthesis of the demo clips: one synthesiser per class, street ambience, microphones.

:func:`render` turns one planned :class:`~features.demo.plan.Clip` into its
samples. Every draw comes from ``np.random.default_rng`` streams keyed by the
seed and a source or clip index, so a clip sounds the same whichever worker
renders it and in whatever order.
"""
from __future__ import annotations

import math

import numpy as np
import soxr
from scipy import fft as sp_fft
from scipy import signal

from .plan import CLASSES, CLIP_STREAM, SCENE_STREAM, SOURCE_STREAM, Clip

# --------------------------------------------------------------------------
# Signal primitives (vectorised; loops only over events or harmonics).
# --------------------------------------------------------------------------

_TWO_PI = 2.0 * np.pi
_GAIN_POINTS = 4096


def _unit(x: np.ndarray) -> np.ndarray:
    """Scale a 1-D signal to unit RMS (silence stays silence)."""
    rms = np.sqrt(np.einsum("i,i->", x, x) / x.size) if x.size else 0.0  # no BLAS threads
    return x / rms if rms > 1e-12 else x


def _upsample(coarse: np.ndarray, hop: int, n: int) -> np.ndarray:
    """Linear interpolation of a curve sampled every ``hop`` points to ``n`` points."""
    ramp = np.arange(hop) / hop
    return (coarse[:-1, None] + np.diff(coarse)[:, None] * ramp).ravel()[:n]


def _phase(freq, n: int, sr: int, phi0: float = 0.0) -> np.ndarray:
    """Running phase (radians) of an oscillator; ``freq`` is Hz, scalar or per sample."""
    if np.ndim(freq) == 0:
        return np.arange(n) * (_TWO_PI * freq / sr) + phi0
    return np.cumsum(freq) * (_TWO_PI / sr) + phi0


def _osc(phase: np.ndarray, amps, f_max: float, sr: int, phases=None) -> np.ndarray:
    """Band-limited periodic wave ``sum_k amps[k-1] sin(k phase + phases[k-1])``.

    A wavetable read with linear interpolation costs the same whatever the
    number of harmonics; harmonics that would pass 0.45 sr at ``f_max`` are
    dropped so nothing aliases.
    """
    amps = np.asarray(amps, dtype=float)
    k_max = max(1, min(len(amps), int(0.45 * sr / max(f_max, 1.0))))
    size = 1 << max(11, int(np.ceil(np.log2(16 * k_max))))
    # The table is one period, built from its spectrum by an inverse FFT.
    offsets = np.zeros(k_max) if phases is None else np.asarray(phases)[:k_max]
    spec = np.zeros(size // 2 + 1, dtype=complex)
    spec[1:k_max + 1] = (size / 2.0) * amps[:k_max] * np.exp(1j * (offsets - np.pi / 2.0))
    table = sp_fft.irfft(spec, size)
    table = np.append(table, table[0])
    slope = np.diff(table)
    pos = phase * (size / _TWO_PI)
    pos %= size
    idx = pos.astype(np.intp)
    pos -= idx
    return table[idx] + pos * slope[idx]


def _band_gain(freqs: np.ndarray, *, slope=0.0, lo=None, hi=None, order=2) -> np.ndarray:
    """Magnitude response: power slope ``f**slope`` times Butterworth-like edges."""
    gain = np.maximum(freqs, 20.0) ** (slope / 2.0)
    if lo:
        gain /= np.sqrt(1.0 + (lo / np.maximum(freqs, 1e-3)) ** (2 * order))
    if hi:
        gain /= np.sqrt(1.0 + (freqs / hi) ** (2 * order))
    return gain


def _gain_curve(n_bins: int, sr: int, m: int, gain) -> np.ndarray:
    """``gain(freqs)`` on the rfft bins of an ``m``-point FFT, float32.

    Gains are smooth, so evaluating them on ~4000 points and interpolating is
    several times cheaper than fractional powers on every bin.
    """
    hop = -(-n_bins // _GAIN_POINTS)
    coarse = gain(np.arange(-(-n_bins // hop) + 1) * (hop * sr / m))
    return _upsample(coarse, hop, n_bins).astype(np.float32)


def _noise(n: int, sr: int, rng: np.random.Generator, **band) -> np.ndarray:
    """Unit-RMS coloured noise, shaped in the frequency domain (see ``_band_gain``).

    The spectrum has uniform random real and imaginary parts (much cheaper to
    draw than normals); the inverse FFT sums so many of them that the samples
    are Gaussian anyway.
    """
    m = sp_fft.next_fast_len(n, real=True)
    n_bins = m // 2 + 1
    spec = rng.random(2 * n_bins, dtype=np.float32).view(np.complex64)
    spec -= np.complex64(0.5 + 0.5j)
    spec *= _gain_curve(n_bins, sr, m, lambda f: _band_gain(f, **band))
    spec[0] = 0.0
    return _unit(sp_fft.irfft(spec, m)[:n].astype(np.float64))


def _fft_filter(x: np.ndarray, sr: int, gain) -> np.ndarray:
    """Zero-phase filter by ``gain(freqs)`` (circular, fine for noise-like mixes)."""
    m = sp_fft.next_fast_len(len(x), real=True)
    spec = sp_fft.rfft(x.astype(np.float32), m)
    spec *= _gain_curve(spec.size, sr, m, gain)
    return sp_fft.irfft(spec, m)[: len(x)].astype(np.float64)


def _wander(n: int, sr: int, rng: np.random.Generator, rate: float, depth: float) -> np.ndarray:
    """Smooth random curve around 1 (new value every ``1/rate`` s, cosine-eased)."""
    hop = 64
    knots = 1.0 + depth * rng.uniform(-1.0, 1.0, int(n / sr * rate) + 3)
    pos = np.arange(-(-n // hop) + 1) * (hop * rate / sr)
    i = pos.astype(np.intp)
    ease = 0.5 - 0.5 * np.cos(np.pi * (pos - i))
    return _upsample(knots[i] + ease * (knots[i + 1] - knots[i]), hop, n)


def _decay(m: int, sr: int, tau: float, attack: float = 0.002) -> np.ndarray:
    """Percussive envelope: linear attack then exponential decay (time constant ``tau``)."""
    t = np.arange(m) / sr
    return np.minimum(t / attack, 1.0) * np.exp(-np.maximum(t - attack, 0.0) / tau)


def _add(buf: np.ndarray, event: np.ndarray, start: int) -> None:
    """Mix ``event`` into ``buf`` at sample ``start``, cropping at both ends."""
    if start < 0:
        event, start = event[-start:], 0
    stop = min(len(buf), start + len(event))
    if stop > start:
        buf[start:stop] += event[: stop - start]


def _resonators(x: np.ndarray, sr: int, freqs, bandwidths, gains) -> np.ndarray:
    """Parallel bank of peak filters (formants, metallic modes)."""
    out = np.zeros_like(x)
    for f, bw, g in zip(freqs, bandwidths, gains):
        if f < 0.45 * sr:
            b, a = signal.iirpeak(f, f / bw, fs=sr)
            out += g * signal.lfilter(b, a, x)
    return out


def _ringing(impulses: np.ndarray, sr: int, freq: float, tau: float) -> np.ndarray:
    """Exponentially decaying sinusoid excited at every non-zero sample of ``impulses``."""
    r = np.exp(-1.0 / (tau * sr))
    w = _TWO_PI * min(freq, 0.45 * sr) / sr
    return signal.lfilter([np.sin(w)], [1.0, -2.0 * r * np.cos(w), r * r], impulses)


def _reverb(x: np.ndarray, sr: int, rng: np.random.Generator, rt60: float, wet: float):
    """Add a diffuse tail: convolution with exponentially decaying, darkened noise."""
    m = max(16, int(min(rt60, 2.0) * sr))
    ir = _noise(m, sr, rng, hi=4000.0, order=1) * np.exp(-6.9 * np.arange(m) / m)
    tail = signal.fftconvolve(x, ir)[: len(x)]
    return x + wet * _unit(tail) * np.sqrt(np.mean(x * x))


# --------------------------------------------------------------------------
# One parameter draw per source recording, one synthesiser per class.
# Each ``_synth_*`` returns a mono float64 array of ``n`` samples.
# --------------------------------------------------------------------------

def _params_air_conditioner(rng):
    return {
        "mains": float(rng.choice([50.0, 60.0])), "hum": rng.uniform(0.0, 0.5),
        "fan_rate": rng.uniform(8.0, 25.0), "blades": int(rng.integers(3, 8)),
        "fan": rng.uniform(0.15, 0.8), "rolloff": rng.uniform(0.8, 2.0),
        "slope": rng.uniform(-1.3, -0.2), "lo": rng.uniform(30.0, 200.0),
        "hi": rng.uniform(600.0, 5000.0),
        "whoosh": rng.uniform(0.05, 0.35),
        "whine": rng.uniform(0.02, 0.15) if rng.random() < 0.3 else 0.0,
        "whine_f": rng.uniform(900.0, 3000.0), "phases": rng.uniform(0, _TWO_PI, 12),
    }


def _synth_air_conditioner(n, sr, p, rng):
    speed = p["fan_rate"] * (1.0 + 0.01 * rng.standard_normal())
    t = np.arange(n) / sr
    air = _noise(n, sr, rng, slope=p["slope"], lo=p["lo"], hi=p["hi"] * rng.uniform(0.9, 1.1))
    air *= 1.0 + p["whoosh"] * np.sin(_TWO_PI * speed * t + rng.uniform(0, _TWO_PI))
    bpf = speed * p["blades"]
    amps = np.arange(1, 13) ** -p["rolloff"]
    y = air + p["fan"] * _unit(_osc(_phase(bpf, n, sr), amps, bpf, sr, p["phases"]))
    hum = 2.0 * p["mains"]
    y += p["hum"] * _unit(_osc(_phase(hum, n, sr), [1.0, 0.4, 0.25, 0.1], hum, sr))
    if p["whine"]:
        y += p["whine"] * np.sqrt(2.0) * np.sin(_phase(p["whine_f"], n, sr))
    return y * _wander(n, sr, rng, 0.3, 0.05)


def _params_car_horn(rng):
    return {
        "f1": rng.uniform(350.0, 500.0),
        "ratio": rng.uniform(1.18, 1.34) if rng.random() < 0.75 else 0.0,
        "rolloff": rng.uniform(0.7, 1.4), "res": rng.uniform(1800.0, 3500.0),
        "boost": rng.uniform(0.5, 3.0),
        "honk": rng.uniform(0.3, 1.2), "phases": rng.uniform(0, _TWO_PI, 30),
    }


def _horn_envelope(n, sr, p, rng):
    """One to four honks (sometimes held for the whole clip) with soft edges."""
    env = np.zeros(n)
    t = rng.uniform(0.0, 0.4) * n / sr
    for _ in range(int(rng.integers(1, 5))):
        length = p["honk"] * rng.uniform(0.6, 1.6) if rng.random() < 0.65 else n / sr
        a, b = int(t * sr), int(min(t + length, n / sr) * sr)
        if b - a < 8:
            break
        edge = np.minimum(np.arange(b - a) + 1, np.arange(b - a, 0, -1))
        ramp = np.minimum(1.0, edge / (0.02 * sr))
        env[a:b] = np.maximum(env[a:b], ramp)
        t += length + rng.uniform(0.05, 0.4)
    if not env.any():
        env[:] = 1.0
    return env


def _synth_car_horn(n, sr, p, rng):
    f1 = p["f1"] * (1.0 + 0.004 * rng.standard_normal())
    drift = 1.0 + rng.uniform(-0.03, 0.03) * np.linspace(-1.0, 1.0, n)  # passing car
    y = np.zeros(n)
    for f in (f1, f1 * p["ratio"]) if p["ratio"] else (f1,):
        k = np.arange(1, 31)
        resonance = np.exp(-(((k * f - p["res"]) / 600.0) ** 2))  # the horn's bell
        amps = k ** -p["rolloff"] * (1.0 + p["boost"] * resonance)
        y += _osc(_phase(f * drift, n, sr), amps, f * 1.03, sr, p["phases"])
    return y * _horn_envelope(n, sr, p, rng)


_VOWELS = np.array([
    (270, 2290, 3010), (530, 1840, 2480), (730, 1090, 2440),
    (570, 840, 2410), (300, 870, 2240), (660, 1720, 2410),
], dtype=float)
_VOICE_SR = 16000


def _params_children_playing(rng):
    voices = int(rng.integers(2, 7))
    return {
        "f0": rng.uniform(230.0, 420.0, voices), "gain": rng.uniform(0.3, 1.0, voices),
        "scale": rng.uniform(1.15, 1.35), "rate": rng.uniform(1.5, 4.0),
        "shriek": rng.uniform(0.0, 0.25), "laugh": rng.uniform(0.0, 0.3),
        "distance": rng.uniform(2500.0, 7000.0),
    }


def _syllable(m, sr, f_start, f_end, formants, rng):
    """A voiced syllable: gliding harmonic source through three formant resonators."""
    f0 = np.geomspace(f_start, f_end, m)
    source = _osc(_phase(f0, m, sr), 1.0 / np.arange(1, 26), max(f_start, f_end), sr)
    source += 0.15 * rng.standard_normal(m)  # breath
    voiced = _resonators(source, sr, formants, formants / 8.0 + 60.0, (1.0, 0.6, 0.3))
    return voiced * np.sin(np.pi * np.arange(m) / m) ** 0.6


def _voice(m, sr, f0, p, rng):
    """Babble of one child: syllables, laughs (fast 'ha' bursts) and shrieks."""
    out = np.zeros(m)
    t = rng.uniform(0.0, 0.4)
    while t < m / sr:
        vowel = _VOWELS[rng.integers(len(_VOWELS))] * p["scale"]
        if rng.random() < p["shriek"]:
            f_a, dur = rng.uniform(700.0, 1200.0), rng.uniform(0.25, 0.7)
            f_b = f_a * rng.uniform(0.7, 1.3)
        else:
            f_a, dur = f0 * rng.uniform(0.85, 1.25), rng.uniform(0.08, 0.3)
            f_b = f_a * rng.uniform(0.7, 1.4)
        repeats = int(rng.integers(3, 7)) if rng.random() < p["laugh"] else 1
        for _ in range(repeats):
            seg = _syllable(int(dur * sr) + 1, sr, f_a, f_b, vowel, rng)
            _add(out, seg * rng.uniform(0.5, 1.0), int(t * sr))
            t += dur + (0.05 if repeats > 1 else 0.0)
        t += rng.exponential(1.0 / p["rate"])
    return out


def _synth_children_playing(n, sr, p, rng):
    # Voices live below 8 kHz, so synthesise them at 16 kHz and resample once.
    m = math.ceil(n * _VOICE_SR / sr) + 32
    mix = np.zeros(m)
    for f0, gain in zip(p["f0"], p["gain"]):
        mix += gain * _unit(_voice(m, _VOICE_SR, f0, p, rng))
    mix = _fft_filter(mix, _VOICE_SR, lambda f: _band_gain(f, hi=p["distance"]))
    y = soxr.resample(mix, _VOICE_SR, sr) if sr != _VOICE_SR else mix
    return np.pad(y, (0, max(0, n - len(y))))[:n]


def _params_dog_bark(rng):
    size = rng.uniform(0.0, 1.0)  # 0 = small yappy dog, 1 = big dog
    return {
        "f0": 650.0 - 400.0 * size + rng.uniform(-50.0, 50.0), "f1": rng.uniform(450.0, 900.0),
        "f2": rng.uniform(1100.0, 2200.0), "dur": 0.09 + 0.13 * size * rng.uniform(0.7, 1.3),
        "noise": rng.uniform(0.15, 0.6), "fall": rng.uniform(0.45, 0.8),
        "group": int(rng.integers(1, 5)), "gap": rng.uniform(0.12, 0.3),
        "pause": rng.uniform(0.3, 1.4), "room": rng.uniform(0.0, 0.4),
        "rt60": rng.uniform(0.2, 0.8), "growl": rng.uniform(0.0, 0.15),
    }


def _bark(m, sr, p, rng, f0):
    """A bark: harsh harmonic burst with a fast pitch fall, through two formants."""
    pitch = f0 * np.geomspace(1.15, p["fall"], m)
    tone = _osc(_phase(pitch, m, sr), np.arange(1, 31) ** -0.8, 1.15 * f0, sr)
    rough = 1.0 + 0.4 * np.sin(_phase(rng.uniform(30.0, 80.0), m, sr))
    breath = _noise(m, sr, rng, lo=300.0, hi=6000.0, order=1)
    src = (1.0 - p["noise"]) * _unit(tone) * rough + p["noise"] * breath
    shaped = 0.4 * src + _resonators(src, sr, (p["f1"], p["f2"]), (150.0, 300.0), (1.0, 0.7))
    return shaped * _decay(m, sr, m / sr / 3.0, attack=0.004)


def _growl(m, sr, rng):
    """A low, rough growl: noisy low tone with strong 20-30 Hz amplitude flutter."""
    f0 = rng.uniform(90.0, 160.0)
    tone = _osc(_phase(f0 * _wander(m, sr, rng, 4.0, 0.08), m, sr), np.arange(1, 21) ** -1.0,
                f0 * 1.1, sr)
    flutter = 1.0 + 0.8 * np.sin(_phase(rng.uniform(20.0, 30.0), m, sr))
    y = (_unit(tone) + 0.5 * _noise(m, sr, rng, lo=60.0, hi=1200.0)) * flutter
    return y * np.sin(np.pi * np.arange(m) / m)


def _synth_dog_bark(n, sr, p, rng):
    y = np.zeros(n)
    t = rng.uniform(0.0, min(0.5, 0.3 * n / sr))
    while t < n / sr:
        if rng.random() < p["growl"]:
            m = int(rng.uniform(0.5, 1.5) * sr)
            _add(y, 0.4 * _growl(m, sr, rng), int(t * sr))
            t += m / sr + rng.uniform(0.1, 0.4)
        for _ in range(int(rng.integers(1, p["group"] + 1))):
            m = int(p["dur"] * rng.uniform(0.8, 1.25) * sr)
            f0 = p["f0"] * rng.uniform(0.92, 1.08)
            _add(y, rng.uniform(0.6, 1.0) * _unit(_bark(m, sr, p, rng, f0)), int(t * sr))
            t += m / sr + p["gap"] * rng.uniform(0.7, 1.3)
        t += p["pause"] * rng.exponential(1.0)
    return _reverb(y, sr, rng, p["rt60"], p["room"]) if p["room"] > 0.1 else y


def _params_drilling(rng):
    f0 = rng.uniform(400.0, 1100.0)
    k = np.arange(1, 25)
    res, width = rng.uniform(2000.0, 6000.0), rng.uniform(500.0, 2000.0)
    resonance = np.exp(-(((k * f0 - res) / width) ** 2))  # the whine's bright band
    return {
        "f0": f0, "amps": k ** -0.6 * (1.0 + rng.uniform(2.0, 8.0) * resonance),
        "chatter": rng.uniform(12.0, 45.0), "depth": rng.uniform(0.1, 0.7),
        "grind": rng.uniform(0.2, 1.0), "lo": rng.uniform(800.0, 2500.0),
        "hi": rng.uniform(5000.0, 10000.0),
        "hammer": rng.uniform(18.0, 45.0) if rng.random() < 0.35 else 0.0,
        "on": rng.uniform(0.8, 4.0), "off": rng.uniform(0.1, 0.7), "spin": rng.uniform(0.05, 0.3),
        "phases": rng.uniform(0, _TWO_PI, 24),
    }


def _on_off(n, sr, rng, on, off, ramp):
    """0..1 motor speed: runs of about ``on`` s separated by ``off`` s, with ramps."""
    times, values, t = [0.0], [float(rng.random() < 0.7)], 0.0
    while t < n / sr:
        t += on * rng.uniform(0.5, 1.5)
        times += [t, t + ramp]
        values += [1.0, 0.0]
        t += ramp + off * rng.uniform(0.5, 1.5)
        times += [t, t + ramp]
        values += [0.0, 1.0]
        t += ramp
    return np.interp(np.arange(n) / sr, times, values)


def _synth_drilling(n, sr, p, rng):
    speed = _on_off(n, sr, rng, p["on"], p["off"], p["spin"])
    speed *= _wander(n, sr, rng, 3.0, 0.05)  # bite of the bit changes the load
    freq = p["f0"] * rng.uniform(0.97, 1.03) * (0.35 + 0.65 * speed)
    whine = _unit(_osc(_phase(freq, n, sr), p["amps"], 1.05 * p["f0"], sr, p["phases"]))
    grind = p["grind"] * _noise(n, sr, rng, lo=p["lo"], hi=p["hi"])
    chatter = 1.0 + p["depth"] * np.sin(_phase(p["chatter"], n, sr, rng.uniform(0, _TWO_PI)))
    y = (whine + grind) * chatter * speed ** 1.5
    if p["hammer"]:
        blows = np.zeros(n)
        blows[:: max(1, int(sr / p["hammer"]))] = 1.0
        env = signal.lfilter([1.0], [1.0, -np.exp(-1.0 / (0.008 * sr))], blows)
        y *= 0.4 + env
    return y


def _params_engine_idling(rng):
    diesel = rng.random() < 0.4
    cylinders = int(rng.choice([4, 4, 6, 8]))
    k = np.arange(1, 301)
    amps = k ** -0.5 * rng.uniform(0.3, 1.0, k.size)
    amps[cylinders // 2 - 1:: cylinders // 2] *= rng.uniform(3.0, 8.0)  # firing harmonics
    return {
        "rpm": rng.uniform(550.0, 1100.0), "cylinders": cylinders, "amps": amps,
        "exhaust": rng.uniform(80.0, 300.0), "rumble": rng.uniform(0.3, 1.2),
        "rumble_hi": rng.uniform(250.0, 900.0),
        "tick": rng.uniform(0.1, 0.4) if diesel else rng.uniform(0.0, 0.1),
        "tick_lo": rng.uniform(2500.0, 6000.0),
        "belt": rng.uniform(0.02, 0.12) if rng.random() < 0.25 else 0.0,
        "belt_f": rng.uniform(600.0, 2500.0),
        "phases": rng.uniform(0, _TWO_PI, 300),
    }


def _synth_engine_idling(n, sr, p, rng):
    cycle = p["rpm"] * rng.uniform(0.97, 1.03) / 120.0  # one 4-stroke cycle = 2 turns
    cycle = cycle * _wander(n, sr, rng, rng.uniform(0.3, 1.0), 0.02)
    if rng.random() < 0.1:  # a short rev
        cycle *= 1.0 + 0.15 * np.exp(-(((np.arange(n) / sr - rng.uniform(0, n / sr)) / 0.3) ** 2))
    phase = _phase(cycle, n, sr)
    k = np.arange(1, len(p["amps"]) + 1)
    amps = p["amps"] * _band_gain(k * cycle.mean(), lo=40.0, hi=2.5 * p["exhaust"], order=3)
    body = _unit(_osc(phase, amps, cycle.max(), sr, p["phases"]))
    firing = (0.5 + 0.5 * np.cos(phase * (p["cylinders"] / 2))) ** 3
    rumble = _noise(n, sr, rng, slope=-1.0, hi=p["rumble_hi"]) * firing
    tick = _noise(n, sr, rng, lo=p["tick_lo"]) * firing ** 4
    y = body + p["rumble"] * _unit(rumble) + p["tick"] * _unit(tick)
    if p["belt"]:
        y += p["belt"] * np.sqrt(2.0) * np.sin(_phase(p["belt_f"], n, sr))
    return y


def _params_gun_shot(rng):
    return {
        "decay": rng.uniform(0.003, 0.025), "thump": rng.uniform(50.0, 160.0),
        "body": rng.uniform(0.2, 0.8), "bright": rng.uniform(2500.0, 12000.0),
        "boom": rng.uniform(0.5, 1.5), "boom_hi": rng.uniform(300.0, 1200.0),
        "boom_decay": rng.uniform(0.02, 0.08),
        "rt60": rng.uniform(0.5, 2.5), "wet": rng.uniform(0.2, 1.0),
        "echoes": rng.uniform(0.05, 0.5, int(rng.integers(0, 4))), "automatic": rng.random() < 0.1,
        "rate": rng.uniform(8.0, 15.0),
    }


def _shot_times(n, sr, p, rng):
    first = rng.uniform(0.01, max(0.02, min(0.4, 0.3 * n / sr)))
    if p["automatic"] and rng.random() < 0.7:
        gaps = rng.normal(1.0 / p["rate"], 0.05 / p["rate"], int(rng.integers(2, 12)))
    else:
        gaps = rng.uniform(0.25, 1.2, int(rng.integers(0, 3)))
    return first + np.concatenate([[0.0], np.cumsum(gaps)])


def _shot(sr, p, rng):
    """Muzzle blast: a crack with a very fast decay, a low-mid boom and a thump."""
    m = int(0.3 * sr)
    crack = _noise(m, sr, rng, slope=-1.0, lo=150.0, hi=min(p["bright"], 0.45 * sr))
    crack *= _decay(m, sr, p["decay"] * rng.uniform(0.8, 1.2), attack=0.0005)
    boom = _noise(m, sr, rng, lo=60.0, hi=p["boom_hi"]) * _decay(m, sr, p["boom_decay"], 0.001)
    thump = np.sin(_phase(p["thump"] * np.geomspace(1.5, 1.0, m), m, sr))
    thump *= _decay(m, sr, 0.04, 0.001)
    return crack / np.abs(crack).max() + p["boom"] * boom / np.abs(boom).max() + p["body"] * thump


def _synth_gun_shot(n, sr, p, rng):
    dry = np.zeros(n)
    for t in _shot_times(n, sr, p, rng):
        if t < n / sr:
            _add(dry, rng.uniform(0.6, 1.0) * _shot(sr, p, rng), int(t * sr))
    y = _reverb(dry, sr, rng, p["rt60"], p["wet"])
    for delay in p["echoes"]:  # discrete reflections from buildings
        _add(y, rng.uniform(0.1, 0.5) * dry, int(delay * sr))
    return y


def _params_jackhammer(rng):
    return {
        "rate": rng.uniform(10.0, 20.0), "decay": rng.uniform(0.006, 0.025),
        "jitter": rng.uniform(0.02, 0.08), "ring": rng.uniform(700.0, 4500.0, 3),
        "ring_tau": rng.uniform(0.01, 0.05), "ring_mix": rng.uniform(0.2, 0.7),
        "lo": rng.uniform(400.0, 1500.0), "hi": rng.uniform(5000.0, 12000.0),
        "compressor": rng.uniform(0.0, 0.4), "comp_f": rng.uniform(25.0, 50.0),
        "run": rng.uniform(0.8, 4.0), "pause": rng.uniform(0.15, 1.0),
    }


def _blows(n, sr, p, rng):
    """Impulse train of hammer blows: runs at ``rate`` Hz with timing jitter, then pauses."""
    x = np.zeros(n)
    t = rng.uniform(0.0, 0.3)
    run_end = t + p["run"] * rng.uniform(0.5, 1.5)
    while t < n / sr:
        x[int(t * sr)] += rng.uniform(0.7, 1.0)
        t += (1.0 + p["jitter"] * rng.standard_normal()) / p["rate"]
        if t > run_end:
            t += p["pause"] * rng.uniform(0.5, 1.5)
            run_end = t + p["run"] * rng.uniform(0.5, 1.5)
    return x


def _synth_jackhammer(n, sr, p, rng):
    blows = _blows(n, sr, p, rng)
    env = signal.lfilter([1.0], [1.0, -np.exp(-1.0 / (p["decay"] * sr))], blows)
    y = _noise(n, sr, rng, lo=p["lo"], hi=p["hi"]) * env
    ring = sum(_ringing(blows, sr, f, p["ring_tau"]) for f in p["ring"])
    y = _unit(y) + p["ring_mix"] * _unit(ring)
    if p["compressor"]:
        hum = _osc(_phase(p["comp_f"], n, sr), np.arange(1, 31) ** -1.0, p["comp_f"], sr)
        y += p["compressor"] * _unit(hum)
    return y


def _params_siren(rng):
    k = np.arange(1, 13)
    return {
        "kind": str(rng.choice(["wail", "yelp", "hilo", "mixed"], p=[0.45, 0.3, 0.15, 0.1])),
        "lo": rng.uniform(450.0, 800.0), "hi": rng.uniform(1100.0, 1800.0),
        "wail": rng.uniform(3.0, 7.0), "yelp": rng.uniform(0.12, 0.35),
        "rise": rng.uniform(0.4, 0.7),
        "hilo": rng.uniform(0.8, 1.4), "step": rng.uniform(1.25, 1.4),
        # Some speakers are square-ish: odd harmonics stronger.
        "amps": k ** -rng.uniform(0.7, 2.0) * (1.0 + rng.uniform(0.0, 1.0) * (k % 2)),
        "echo": rng.uniform(0.0, 0.4),
    }


def _sweep(n, sr, lo, hi, period, rise, phi):
    """Siren pitch: rises over ``rise`` of each period, falls over the rest, eased."""
    u = (np.arange(n) / (sr * period) + phi) % 1.0
    s = np.where(u < rise, u / rise, (1.0 - u) / (1.0 - rise))
    return lo + (hi - lo) * (0.5 - 0.5 * np.cos(np.pi * s))


def _siren_pitch(n, sr, p, rng):
    kind, phi = p["kind"], rng.uniform()
    if kind == "hilo":
        u = (np.arange(n) / (sr * p["hilo"]) + phi) % 1.0
        return np.where(u < 0.5, p["lo"], p["lo"] * p["step"])
    if kind == "yelp" or (kind == "mixed" and rng.random() < 0.5):
        return _sweep(n, sr, p["lo"], p["hi"], p["yelp"], 0.8, phi)
    return _sweep(n, sr, p["lo"], p["hi"], p["wail"], p["rise"], phi)


def _synth_siren(n, sr, p, rng):
    pitch = _siren_pitch(n, sr, p, rng)
    t = np.arange(n) / sr
    t0, d = rng.uniform(0.0, n / sr), rng.uniform(0.0, 0.04)  # Doppler pass-by
    pitch = pitch * (1.0 - d * np.tanh((t - t0) / 0.7))
    y = _osc(_phase(pitch, n, sr), p["amps"], pitch.max(), sr)
    y *= 1.0 / np.sqrt(1.0 + ((t - t0) / rng.uniform(1.0, 6.0)) ** 2)
    if p["echo"] > 0.05:
        _add(y, p["echo"] * y.copy(), int(rng.uniform(0.03, 0.15) * sr))
    return y


_SCALES = (
    (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9), (0, 3, 5, 7, 10),
    (0, 2, 3, 5, 7, 9, 10),
)


def _params_street_music(rng):
    return {
        "bpm": rng.uniform(80.0, 150.0), "root": int(rng.integers(45, 58)),
        "scale": _SCALES[rng.integers(len(_SCALES))],
        "chords": rng.choice([0, 3, 4, 5], 4),  # scale degrees of a 4-bar progression
        "lead": np.arange(1, 13) ** -rng.uniform(0.7, 2.0),
        "lead_phases": rng.uniform(0, _TWO_PI, 12),
        "pluck": rng.random() < 0.6, "sustain": rng.uniform(0.15, 0.5),
        "drums": rng.random() < 0.65, "bass": rng.random() < 0.7, "strum": rng.random() < 0.7,
        "density": rng.uniform(0.5, 0.9), "swing": rng.uniform(0.0, 0.15),
    }


def _note(midi, dur, sr, p, amps, pluck=True):
    """A pitched note: wavetable tone with a plucked or bowed/blown envelope."""
    f = 440.0 * 2.0 ** ((midi - 69) / 12.0)
    m = int(dur * sr)
    tone = _osc(_phase(f, m, sr), amps, f, sr, p["lead_phases"])
    if pluck:
        return tone * _decay(m, sr, p["sustain"], attack=0.003)
    env = np.minimum(1.0, np.arange(m) / (0.03 * sr))
    env *= np.minimum(1.0, np.arange(m, 0, -1) / (0.05 * sr))
    return tone * env * (1.0 + 0.1 * np.sin(_phase(5.5, m, sr)))


def _drum(kind, sr, rng):
    """Kick (falling sine), snare (noise + tone) or hi-hat (bright noise tick)."""
    m = int(0.25 * sr)
    if kind == 0:
        return np.sin(_phase(60.0 * np.geomspace(2.5, 1.0, m), m, sr)) * _decay(m, sr, 0.08)
    if kind == 1:
        noise = _noise(m, sr, rng, lo=1000.0, hi=min(8000.0, 0.45 * sr))
        return (0.7 * noise + 0.4 * np.sin(_phase(190.0, m, sr))) * _decay(m, sr, 0.05)
    return 0.4 * _noise(m, sr, rng, lo=min(7000.0, 0.4 * sr)) * _decay(m, sr, 0.015)


def _synth_street_music(n, sr, p, rng):
    y = np.zeros(n)
    step = 30.0 / p["bpm"] * rng.uniform(0.98, 1.02)  # eighth note
    scale, degree = p["scale"], int(rng.integers(len(p["scale"])))
    bar0 = int(rng.integers(4))
    for i in range(int(n / sr / step) + 1):
        t = i * step + (p["swing"] * step if i % 2 else 0.0) + rng.normal(0.0, 0.008)
        at = max(0, int(t * sr))
        chord = p["root"] + scale[p["chords"][(bar0 + i // 8) % 4] % len(scale)]
        if rng.random() < p["density"]:
            degree = int(np.clip(degree + rng.integers(-2, 3), 0, 2 * len(scale) - 1))
            midi = p["root"] + 12 + scale[degree % len(scale)] + 12 * (degree // len(scale))
            note = _note(midi, step * rng.choice([1, 2]), sr, p, p["lead"], p["pluck"])
            _add(y, rng.uniform(0.5, 1.0) * note, at)
        if p["strum"] and i % 8 == 0:
            for j, iv in enumerate((0, 4 if 4 in scale else 3, 7)):
                strum = at + int(j * 0.015 * sr)
                _add(y, 0.3 * _note(chord + iv, 8 * step, sr, p, p["lead"][:6]), strum)
        if p["bass"] and i % 2 == 0:
            _add(y, 0.5 * _note(chord - 12, 2 * step, sr, p, [1.0, 0.5, 0.2]), at)
        if p["drums"]:
            kinds = [0] if i % 4 == 0 else [1] if i % 4 == 2 else []
            for kind in kinds + [2]:
                _add(y, rng.uniform(0.6, 1.0) * _drum(kind, sr, rng), at)
    return y


_SYNTHS = (
    (_params_air_conditioner, _synth_air_conditioner),
    (_params_car_horn, _synth_car_horn),
    (_params_children_playing, _synth_children_playing),
    (_params_dog_bark, _synth_dog_bark),
    (_params_drilling, _synth_drilling),
    (_params_engine_idling, _synth_engine_idling),
    (_params_gun_shot, _synth_gun_shot),
    (_params_jackhammer, _synth_jackhammer),
    (_params_siren, _synth_siren),
    (_params_street_music, _synth_street_music),
)


# --------------------------------------------------------------------------
# Recording conditions shared by all classes, and the final mix.
# --------------------------------------------------------------------------

def _scene_params(rng):
    """Where and how a source was recorded (drawn per source, class-independent)."""
    return {
        "traffic": rng.uniform(0.2, 1.0), "traffic_hi": rng.uniform(150.0, 600.0),
        "broadband": rng.uniform(0.2, 1.0), "slope": rng.uniform(-1.3, -0.5),
        "crowd": rng.uniform(0.1, 0.5) if rng.random() < 0.3 else 0.0,
        "wind": rng.uniform(0.3, 1.0) if rng.random() < 0.2 else 0.0,
        "tilt": rng.uniform(-3.0, 1.5), "mic_lo": rng.uniform(20.0, 150.0),
        "mic_hi": rng.uniform(5000.0, 20000.0),
        "pan": np.pi / 4 + rng.uniform(-0.35, 0.35), "spread": rng.uniform(0.2, 1.0),
        "level_db": rng.uniform(-20.0, -2.0), "interferer": rng.uniform(0.0, 0.3),
    }


def _mic_gain(scene, sr):
    """Microphone/recorder colouring: spectral tilt and band limits."""
    hi = min(scene["mic_hi"], 0.45 * sr)

    def gain(freqs):
        tilt = (np.maximum(freqs, 20.0) / 1000.0) ** (scene["tilt"] / (20.0 * np.log10(2.0)))
        return tilt * _band_gain(freqs, lo=scene["mic_lo"], hi=hi)
    return gain


def _background(n, sr, scene, rng):
    """Street ambience: traffic rumble + broadband hiss (+ crowd murmur, wind gusts)."""
    mic = _mic_gain(scene, sr)

    def shaped(freqs):
        traffic = scene["traffic"] * _band_gain(freqs, slope=-2.0, hi=scene["traffic_hi"])
        hiss = scene["broadband"] * 0.05 * _band_gain(freqs, slope=scene["slope"], lo=40.0)
        crowd = scene["crowd"] * 0.3 * _band_gain(freqs, lo=300.0, hi=3000.0)
        return (traffic + hiss + crowd) * mic(freqs)

    m = sp_fft.next_fast_len(n, real=True)
    n_bins = m // 2 + 1
    spec = rng.random(2 * n_bins, dtype=np.float32).view(np.complex64)
    spec -= np.complex64(0.5 + 0.5j)
    spec *= _gain_curve(n_bins, sr, m, shaped)
    spec[0] = 0.0
    y = _unit(sp_fft.irfft(spec, m)[:n].astype(np.float64))
    y *= _wander(n, sr, rng, 0.4, 0.3)  # cars passing
    if scene["wind"]:
        gusts = _wander(n, sr, rng, 1.5, 0.9) ** 2
        y += scene["wind"] * _noise(n, sr, rng, slope=-1.5, hi=400.0) * gusts
    return y


def _target(clip, seed, scene, rng):
    """The labelled sound, plus sometimes a faint sound of another class."""
    n, sr = clip.n_frames, clip.fmt.samplerate
    params_fn, synth = _SYNTHS[clip.class_id]
    params = params_fn(np.random.default_rng([seed, SOURCE_STREAM, clip.source]))
    y = _unit(synth(n, sr, params, rng))
    if rng.random() < scene["interferer"]:
        other = (clip.class_id + int(rng.integers(1, len(CLASSES)))) % len(CLASSES)
        params_fn, synth = _SYNTHS[other]
        y += 10.0 ** (rng.uniform(-20.0, -6.0) / 20.0) * _unit(synth(n, sr, params_fn(rng), rng))
    return _fft_filter(y, sr, _mic_gain(scene, sr))


def render(clip: Clip, seed: int) -> np.ndarray:
    """Samples of one clip, float64 [shape=(n_frames,) or (n_frames, 2)], peak < 1."""
    scene = _scene_params(np.random.default_rng([seed, SCENE_STREAM, clip.source]))
    rng = np.random.default_rng([seed, CLIP_STREAM, clip.index])
    n, sr = clip.n_frames, clip.fmt.samplerate
    target = _unit(_target(clip, seed, scene, rng))
    snr_db = rng.uniform(6.0, 24.0) if clip.salience == 1 else rng.uniform(-4.0, 10.0)
    noise_gain = 10.0 ** (-snr_db / 20.0)
    common = _background(n, sr, scene, rng)
    if clip.fmt.channels == 1:
        y = target + noise_gain * common
    else:
        pan = scene["pan"] + rng.uniform(-0.1, 0.1)
        delay = int(rng.integers(0, int(0.0005 * sr) + 1))
        right = np.roll(target, delay) if delay else target
        # A time-shifted copy of the ambience is uncorrelated with it, and much
        # cheaper than a second one; it decorrelates the two channels.
        side = scene["spread"] * np.roll(common, int(rng.integers(n // 4, 3 * n // 4 + 1)))
        y = np.stack([np.cos(pan) * target + noise_gain * (common + side) / np.sqrt(2.0),
                      np.sin(pan) * right + noise_gain * (common - side) / np.sqrt(2.0)], axis=1)
    if rng.random() < 0.04:  # an overdriven recorder
        y = np.tanh(3.0 * y / np.abs(y).max())
    peak_db = min(-0.5, scene["level_db"] + rng.uniform(-3.0, 3.0))
    return y * (10.0 ** (peak_db / 20.0) / max(np.abs(y).max(), 1e-12))
