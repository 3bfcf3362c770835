"""Cut a clip into fixed-length windows: the tutorials' 3-second rows, made explicit.

Window ``k`` holds samples ``[k * hop, k * hop + length)`` of the clip as
loaded (after ``offset``, ``duration`` and ``fixed_length``), with
``length = round(segment * sr)`` and ``hop = round(segment_hop * sr)``.
The last window, when the clip does not fill it, follows
``segment_last``: ``drop`` leaves it out, ``pad`` fills it with zeros; it
is only kept when it holds samples no earlier window holds. A clip shorter
than one window always gives one zero-padded window, so no clip vanishes
from the table.

Windows are cut from a stream of blocks, so a ten-hour recording is cut
without ever being held whole.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np

from .params import FeatureParams

__all__ = ["Window", "windows"]


@dataclasses.dataclass(frozen=True)
class Window:
    """One window of a clip.

    Attributes
    ----------
    index : int
        0-based position of the window in its clip.
    start_s, end_s : float
        Where its audio starts and ends, in seconds from the start of the
        file; a zero-padded window ends where the clip's audio ends.
    samples : np.ndarray [shape=(round(segment * sr),), dtype=float32]
    """

    index: int
    start_s: float
    end_s: float
    samples: np.ndarray


def windows(blocks: Iterable[np.ndarray], params: FeatureParams) -> Iterator[Window]:
    """The windows of a clip given as consecutive blocks of samples at ``params.sr``.

    Examples
    --------
    >>> p = FeatureParams(sr=10, segment=0.4, segment_last="pad")
    >>> [(w.index, w.start_s, w.end_s) for w in windows([np.ones(10, np.float32)], p)]
    [(0, 0.0, 0.4), (1, 0.4, 0.8), (2, 0.8, 1.0)]
    """
    sr = params.sr
    length = round(params.segment * sr)
    hop = round(params.segment_hop * sr)
    base = params.offset
    buf = np.empty(0, dtype=np.float32)
    start = 0  # clip sample at buf[0]
    k = 0
    seen = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        buf = np.concatenate([buf, block]) if buf.size else block
        seen += block.size
        while k * hop + length <= seen:
            lo = k * hop - start
            yield Window(k, base + k * hop / sr, base + (k * hop + length) / sr,
                         buf[lo:lo + length].copy())
            k += 1
        drop = min(k * hop, seen) - start
        if drop > 0:
            buf, start = buf[drop:], start + drop
    last_end = (k - 1) * hop + length if k else 0
    if k == 0 or (params.segment_last == "pad" and seen > last_end and k * hop < seen):
        padded = np.zeros(length, dtype=np.float32)
        tail = buf[k * hop - start:]
        padded[:tail.size] = tail[:length]
        yield Window(k, base + k * hop / sr, base + seen / sr, padded)
