"""GTZAN's honest split: the fault-filtered, artist-filtered partition, shipped as package data.

GTZAN repeats excerpts, puts one artist's songs in every genre folder's
neighbouring files, and has mislabelled excerpts (Sturm, 2013), so random
or stratified splits of it inflate scores. The reference protocol is the
fault-filtered partition of Kereliuk, Sturm and Larsen (2015): 443 train,
197 validation and 290 test excerpts with no artist in two parts; the 70
excerpts it leaves out are marked ``excluded`` (in no part, not in the
final fit). The list is ``data/gtzan_fault_filtered.csv`` beside this
module, with its sources in its header.

A dataset in the GTZAN layout gets a ``split`` column from the list when
every clip has an original GTZAN name (``<genre>/<genre>.000NN.wav`` or
``.au``), so ``--cv auto`` chooses ``holdout`` on it. When only some do
(a copy with files added or renamed), the list cannot place the others:
no ``split`` column is written, and a warning says so.

>>> parts, notes = fault_filtered_parts(["genres/blues/blues.00000.wav", "genres/disco/disco.00050.wav"],
...                                     ["blues", "disco"])
>>> parts
['validation', 'excluded']
"""
from __future__ import annotations

import functools
import re
from importlib import resources

__all__ = ["EXCLUDED", "GTZAN_GENRES", "SOURCE", "fault_filtered_parts", "partition"]

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
#: The ``split`` value of an excerpt the partition leaves out.
EXCLUDED = "excluded"
SOURCE = ("the fault-filtered partition of Kereliuk, Sturm and Larsen (\"Deep Learning and Music "
          "Adversaries\", IEEE Trans. Multimedia 2015): 443 train / 197 validation / 290 test "
          "excerpts, no artist in two parts")
_ORIGINAL = re.compile(rf"({'|'.join(GTZAN_GENRES)})\.000\d\d")


@functools.cache
def partition() -> dict[str, str]:
    """Excerpt stem (``blues.00000``) -> ``train`` / ``validation`` / ``test``."""
    text = resources.files(__package__).joinpath("data/gtzan_fault_filtered.csv").read_text("utf-8")
    rows = [line.split(",") for line in text.splitlines() if line and not line.startswith("#")]
    return {stem: part for stem, part in rows[1:]}


def fault_filtered_parts(paths: list[str], labels: list[str]) -> tuple[list[str] | None, list[str]]:
    """The part of every clip under the fault-filtered split, and notes for the user.

    Parameters
    ----------
    paths : list of str
        Clip paths relative to the dataset root (``genres/blues/blues.00000.wav``).
    labels : list of str
        Each clip's genre folder.

    Returns
    -------
    parts : list of str or None
        ``train``, ``validation``, ``test`` or ``excluded`` per clip; None
        when some clip is not an original GTZAN excerpt in its own genre's
        folder (the list cannot place it).
    notes : list of str
        What was done, or why the split was not used.
    """
    stems = [p.rsplit("/", 1)[-1].rsplit(".", 1)[0] for p in paths]
    original = [bool(_ORIGINAL.fullmatch(s)) and s.split(".")[0] == label
                for s, label in zip(stems, labels, strict=True)]
    if not any(original):
        return None, []
    if not all(original):
        others = [p for p, ok in zip(paths, original, strict=True) if not ok]
        return None, [
            f"{len(others)} of {len(paths)} clips do not have GTZAN's original names in their genre's "
            f"folder (e.g. {', '.join(others[:3])}), so {SOURCE} cannot place them: the table gets no "
            "'split' column and --cv auto falls back to cross-validation, where excerpts of one "
            "artist (and GTZAN's repeated excerpts) can sit on both sides; add a 'group' column "
            "naming each clip's artist (layout manifest) to keep artists apart"]
    table = partition()
    parts = [table.get(s, EXCLUDED) for s in stems]
    counts = {p: parts.count(p) for p in ("train", "validation", "test", EXCLUDED)}
    return parts, [
        f"GTZAN with its original file names: the 'split' column holds {SOURCE} "
        f"({counts['train']} train, {counts['validation']} validation, {counts['test']} test here; "
        f"{counts[EXCLUDED]} excerpt(s) it leaves out are marked '{EXCLUDED}'), so --cv auto uses "
        "holdout on it"]
