"""Planning the demo dataset: which clips exist, their sources, folds, formats and timings.

Nothing here makes a sound: :func:`plan_clips` decides every clip and
:func:`metadata_rows` turns the plan into the rows of
``metadata/UrbanSound8K.csv``. The plan is drawn from its own random stream
(:data:`PLAN_STREAM`), so changing a synthesiser never moves a clip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: UrbanSound8K class names, indexed by their real ``classID``.
CLASSES = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)
#: Header of ``metadata/UrbanSound8K.csv``, exactly as in the real dataset.
METADATA_COLUMNS = (
    "slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class",
)
N_FOLDS = 10
MIN_CLIPS = len(CLASSES)

# Relative class sizes: car horns and gun shots are rarer, as in the real set
# (429 and 374 clips against 1000), but kept within 2x of the largest class.
_CLASS_WEIGHTS = (1.0, 0.64, 1.0, 1.0, 1.0, 1.0, 0.6, 1.0, 0.93, 1.0)

# Per class: (most kept slices per occurrence, probability that the last slice
# of an occurrence is shorter than 4 s). Short events (gun shots, horns, barks)
# give short clips, long ambient sounds give runs of 4 s slices.
_OCCURRENCES = {
    0: (8, 0.2), 1: (2, 0.75), 2: (6, 0.25), 3: (3, 0.5), 4: (5, 0.3),
    5: (8, 0.2), 6: (1, 0.85), 7: (5, 0.3), 8: (5, 0.3), 9: (8, 0.2),
}
_SLICE_S = 4.0
_MIN_DURATION_S = 0.5

# Independent random streams, so that e.g. changing a synthesiser's draws
# does not shift the fold assignment or the recording conditions.
PLAN_STREAM, SOURCE_STREAM, SCENE_STREAM, CLIP_STREAM = 0, 1, 2, 3


@dataclass(frozen=True)
class Format:
    """How a clip is stored: sample rate, channels and soundfile subtype."""

    samplerate: int
    channels: int
    subtype: str


# Real collections mix formats; the weights roughly follow UrbanSound8K's.
_FORMATS = (
    (Format(44100, 2, "PCM_16"), 0.60),
    (Format(48000, 2, "PCM_24"), 0.13),
    (Format(48000, 1, "PCM_24"), 0.03),
    (Format(44100, 1, "PCM_16"), 0.05),
    (Format(22050, 1, "PCM_16"), 0.10),
    (Format(11025, 1, "PCM_U8"), 0.04),
    (Format(44100, 2, "FLOAT"), 0.05),
)


@dataclass(frozen=True)
class Clip:
    """One planned slice: where it comes from and how it is stored."""

    index: int
    source: int
    fs_id: int
    class_id: int
    fold: int
    occurrence: int
    slice_id: int
    start: float
    n_frames: int
    salience: int
    fmt: Format

    @property
    def name(self) -> str:
        return f"{self.fs_id}-{self.class_id}-{self.occurrence}-{self.slice_id}.wav"

    @property
    def relpath(self) -> str:
        return f"audio/fold{self.fold}/{self.name}"

    def row(self) -> tuple:
        end = self.start + self.n_frames / self.fmt.samplerate
        return (self.name, self.fs_id, round(self.start, 6), round(end, 6), self.salience,
                self.fold, self.class_id, CLASSES[self.class_id])


def _class_counts(n_clips: int) -> np.ndarray:
    """Clips per class: one each, the rest by largest remainder of the weights."""
    weights = np.asarray(_CLASS_WEIGHTS)
    quota = (n_clips - MIN_CLIPS) * weights / weights.sum()
    counts = np.floor(quota).astype(int)
    left = n_clips - MIN_CLIPS - counts.sum()
    counts[np.argsort(-(quota - counts), kind="stable")[:left]] += 1
    return counts + 1


def _source_sizes(count: int, rng: np.random.Generator) -> list[int]:
    """Split one class's clips into source recordings of 2-8 slices (the last may be 1)."""
    sizes = []
    while count > 0:
        size = min(count, int(rng.integers(2, 9)))
        sizes.append(size)
        count -= size
    return sizes


def _assign_folds(sizes: list[int], classes: list[int], rng: np.random.Generator) -> np.ndarray:
    """Whole sources to folds, biggest first, each to the fold poorest in its class."""
    per_class = np.zeros((len(CLASSES), N_FOLDS))
    per_fold = np.zeros(N_FOLDS)
    folds = np.empty(len(sizes), dtype=int)
    for s in np.lexsort((rng.random(len(sizes)), -np.asarray(sizes))):
        c = classes[s]
        fold = np.lexsort((rng.random(N_FOLDS), per_fold, per_class[c]))[0]
        folds[s] = fold + 1
        per_class[c, fold] += sizes[s]
        per_fold[fold] += sizes[s]
    return folds


def _assign_formats(n_sources: int, rng: np.random.Generator) -> list[Format]:
    """One format per source; every format appears once when there are enough sources."""
    probs = np.array([p for _, p in _FORMATS])
    forced = list(range(len(_FORMATS))) if n_sources >= len(_FORMATS) else []
    drawn = rng.choice(len(_FORMATS), size=n_sources - len(forced), p=probs / probs.sum())
    order = np.concatenate([forced, drawn]).astype(int)
    rng.shuffle(order)
    return [_FORMATS[i][0] for i in order]


def _source_clips(source: int, size: int, class_id: int, rng: np.random.Generator, **common):
    """Slices of one source: occurrences of consecutive 4 s windows, some not kept.

    As in UrbanSound8K, an occurrence (a labelled sound event) is cut into
    4 s slices, only the last may be shorter, and the dataset keeps a subset,
    so slice numbers need not be consecutive.
    """
    per_occurrence, p_short = _OCCURRENCES[class_id]
    sr = common["fmt"].samplerate
    p_foreground = rng.uniform(0.45, 0.95)
    t, left, occurrence, clips = rng.uniform(0.0, 20.0), size, 0, []
    while left > 0:
        kept = min(left, int(rng.integers(1, per_occurrence + 1)))
        total = kept + (int(rng.geometric(0.5)) - 1 if per_occurrence > 1 else 0)
        last_s = rng.uniform(_MIN_DURATION_S, 3.99) if rng.random() < p_short else _SLICE_S
        for slice_id in np.sort(rng.choice(total, size=kept, replace=False)):
            duration = last_s if slice_id == total - 1 else _SLICE_S
            clips.append(dict(
                source=source, class_id=class_id, occurrence=occurrence,
                slice_id=int(slice_id), start=round(t + _SLICE_S * slice_id, 3),
                n_frames=math.ceil(duration * sr - 1e-9),
                salience=1 if rng.random() < p_foreground else 2, **common,
            ))
        t += _SLICE_S * (total - 1) + last_s + rng.uniform(0.5, 30.0)
        left -= kept
        occurrence += 1
    return clips


def plan_clips(n_clips: int, seed: int) -> list[Clip]:
    """Every clip of the dataset, in generation order (``index`` keys its random stream)."""
    rng = np.random.default_rng([seed, PLAN_STREAM])
    sizes, classes = [], []
    for class_id, count in enumerate(_class_counts(n_clips)):
        for size in _source_sizes(int(count), rng):
            sizes.append(size)
            classes.append(class_id)
    fs_ids = rng.choice(209_900, size=len(sizes), replace=False) + 100
    folds = _assign_folds(sizes, classes, rng)
    formats = _assign_formats(len(sizes), rng)
    clips = []
    for s, (size, class_id) in enumerate(zip(sizes, classes)):
        clips += _source_clips(s, size, class_id, rng, fs_id=int(fs_ids[s]),
                               fold=int(folds[s]), fmt=formats[s])
    return [Clip(index=i, **c) for i, c in enumerate(clips)]


def metadata_rows(clips: list[Clip]) -> list[tuple]:
    """Rows of ``metadata/UrbanSound8K.csv`` (columns :data:`METADATA_COLUMNS`), by file name."""
    return sorted((c.row() for c in clips), key=lambda r: r[0])
