"""Synthetic demo dataset in the exact UrbanSound8K layout (``python -m features demo-data``).

``make_demo_dataset`` writes ``metadata/UrbanSound8K.csv`` and
``audio/fold1`` ... ``audio/fold10`` with the ten UrbanSound8K classes, each
synthesised procedurally so that it sounds like its name. The dataset copies
the structure that matters for honest evaluation of the real one:

- clips are slices of "source recordings" (one ``fsID`` = one draw of the
  class's synthesis parameters, several slices each) and every slice of a
  source lands in the same fold, so fold-wise cross-validation never sees the
  same recording on both sides;
- clips are mostly 4 s, some shorter (the last slice of an occurrence);
- file formats are mixed as in real collections (mostly 44.1 kHz stereo
  16-bit, some 48 kHz 24-bit, 22.05 kHz mono, a few 8-bit and float);
- every clip carries street-like background noise at a random SNR (lower for
  ``salience`` 2), a random microphone colouring and sometimes a faint sound
  of another class, so classes overlap and no classifier reaches 100 %.

Everything is drawn from ``np.random.default_rng`` streams keyed by the seed
and a source or clip index, so the output is byte-identical for a given
``(n_clips, seed)`` whatever the number of worker processes.

Modules: :mod:`~features.demo.plan` decides the clips (sources, folds,
formats, timings), :mod:`~features.demo.synthesis` makes their sound and
:mod:`~features.demo.writing` writes the dataset.
"""
from __future__ import annotations

from .writing import make_demo_dataset

__all__ = ["make_demo_dataset"]
