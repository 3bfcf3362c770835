"""Published numbers to read ours beside, for the datasets whose layout we recognise.

A score means little without the numbers others report under the same
protocol. For UrbanSound8K, GTZAN and Speech Commands (recognised by
layout) the report lists the published references below, each with its
source, and says when our protocol is not theirs. Only numbers stated in
the cited works are listed; where a work describes a protocol or a fault
rather than a score, the entry says so and gives no number.
"""
from __future__ import annotations

import dataclasses

__all__ = ["REFERENCES", "Reference", "references_for"]


@dataclasses.dataclass(frozen=True)
class Reference:
    """One published result or finding.

    Attributes
    ----------
    what : str
        The system or the finding.
    score : str
        The published number ("" when the entry states a finding, not a score).
    protocol : str
        The protocol it was measured under.
    source : str
        Authors, title, venue, year.
    url : str
    """

    what: str
    score: str
    protocol: str
    source: str
    url: str


_SB = ("J. Salamon and J. P. Bello, \"Deep Convolutional Neural Networks and Data Augmentation "
       "for Environmental Sound Classification\", IEEE Signal Processing Letters 24(3), 2017")
_SB_URL = "https://arxiv.org/abs/1608.04363"

#: Layout -> references; ``protocols`` of each: the protocols it compares with.
REFERENCES: dict[str, tuple[tuple[str, ...], tuple[Reference, ...]]] = {
    "urbansound8k": (("folds",), (
        Reference("SB-CNN (log-mel CNN), no augmentation", "0.73", "the 10 predefined folds",
                  _SB, _SB_URL),
        Reference("SB-CNN with data augmentation", "0.79", "the 10 predefined folds", _SB, _SB_URL),
        Reference("Reshuffled folds (a random train/test split)", "",
                  "warned against by the dataset's authors: related slices land on both sides, "
                  "\"leading to inflated scores\"",
                  "UrbanSound8K dataset page (Salamon, Jacoby and Bello)",
                  "https://urbansounddataset.weebly.com/urbansound8k.html"),
    )),
    "gtzan": (("group", "stratified", "folds", "holdout"), (
        Reference("GTZAN's faults: 50 exact replicas, 22 excerpts of one recording, 13 versions, "
                  "43 conspicuous and 63 contentious mislabelings", "",
                  "random splits put repeated material on both sides and inflate scores",
                  "B. L. Sturm, \"An Analysis of the GTZAN Music Genre Dataset\", ACM MIRUM "
                  "workshop, 2012; and \"The GTZAN dataset: Its contents, its faults, their "
                  "effects on evaluation, and its future use\", arXiv:1306.1461, 2013",
                  "https://arxiv.org/abs/1306.1461"),
        Reference("The fault-filtered partition (443 / 197 / 290 excerpts, no artist on two sides)",
                  "", "the reference protocol for honest GTZAN numbers",
                  "C. Kereliuk, B. L. Sturm and J. Larsen, \"Deep Learning and Music "
                  "Adversaries\", IEEE Transactions on Multimedia 17(11), 2015",
                  "https://arxiv.org/abs/1507.04761"),
    )),
    "speechcommands": (("holdout",), (
        Reference("Baseline convolutional model, V2 data", "0.882 (top-one accuracy)",
                  "the official validation and testing lists, but a 12-class task (10 words, "
                  "'unknown' and 'silence'), not one class per word as here",
                  "P. Warden, \"Speech Commands: A Dataset for Limited-Vocabulary Speech "
                  "Recognition\", arXiv:1804.03209, 2018", "https://arxiv.org/abs/1804.03209"),
    )),
}


def references_for(layout: str | None, protocol: str) -> dict[str, object] | None:
    """The references of a dataset layout, and whether our protocol is theirs.

    Returns
    -------
    dict or None
        ``layout``, ``same_protocol`` (bool) and ``references`` (list of
        :class:`Reference` as dicts); None for a layout without references.

    Examples
    --------
    >>> references_for("urbansound8k", "folds")["same_protocol"]
    True
    >>> references_for("folders", "group") is None
    True
    """
    if layout not in REFERENCES:
        return None
    protocols, refs = REFERENCES[layout]
    return {"layout": layout, "same_protocol": protocol in protocols,
            "references": [dataclasses.asdict(r) for r in refs]}
