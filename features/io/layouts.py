"""The dataset layouts the extractor recognises: one definition of each.

The command line's help, dataset discovery (:mod:`features.io.datasets`) and
the data dictionary (:mod:`features.table`) all read this table, so a new
layout is one entry here plus its reader. Light to import (``--help`` uses
it).
"""
from __future__ import annotations

import dataclasses

__all__ = ["LAYOUTS", "Layout"]


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one kind of dataset is laid out.

    Attributes
    ----------
    name : str
        What ``--layout`` takes.
    shape : str
        The files it expects, as the help and error messages show it.
    label_source : str
        Where a clip's label comes from (for the data dictionary).
    detected : bool
        Whether it is recognised without ``--layout`` (a manifest needs
        ``--manifest``).
    """

    name: str
    shape: str
    label_source: str
    detected: bool = True


#: In the order detection tries them.
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("urbansound8k", "ROOT/metadata/UrbanSound8K.csv + ROOT/audio/fold1..fold10/",
           "the 'class' column of UrbanSound8K.csv"),
    Layout("speechcommands", "ROOT/<word>/<speaker>_nohash_<n>.wav + validation_list.txt, "
                             "testing_list.txt (and _background_noise_/)",
           "the word folder holding the clip (group: the speaker; split: from the lists)"),
    Layout("gtzan", "ROOT/genres/<genre>/*.wav (or genres_original/, the Kaggle copy)",
           "the genre folder name (split: GTZAN's fault-filtered partition, when the names are the original ones)"),
    Layout("folders", "ROOT/<label>/<clip>: one folder per class",
           "the name of the folder holding the clip"),
    Layout("manifest", "a CSV (--manifest) with columns path,label[,fold,group,...]; "
                       "paths relative to ROOT, other columns copied to the table",
           "the manifest's 'label' column", detected=False),
)}


def help_lines(indent: str = "  ") -> str:
    """One line per layout, ``name  shape``, for help texts."""
    width = max(len(n) for n in LAYOUTS) + 2
    return "\n".join(f"{indent}{n:<{width}}{layout.shape}" for n, layout in LAYOUTS.items())
