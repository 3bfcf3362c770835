"""Why an audio file cannot be used, in words a user can act on.

Each function returns ``(message, reason)``: the message names the file
and says what to do; the reason is the cause in a few words (no file name)
for counting failures by cause in ``errors.csv``.
"""
from __future__ import annotations

import os
import stat
from typing import Any

__all__ = ["ADVICE", "NON_FINITE", "file_problem", "no_samples", "non_finite_message", "undecodable"]

ADVICE = "Replace or re-export the file, or remove it from the dataset."


def file_problem(name: str) -> tuple[str, str] | None:
    """(message, reason) if the path is not a readable non-empty file, else None."""
    denied = (f"audio file {name!r} cannot be opened: permission denied. Fix its permissions.",
              "permission denied")
    try:
        st = os.stat(name)
    except FileNotFoundError:
        return ((f"audio file {name!r} does not exist. Check the path in the metadata or "
                f"restore the file."), "file does not exist")
    except PermissionError:
        return denied
    except OSError as exc:
        return f"audio file {name!r} cannot be opened: {exc.strerror}.", f"cannot open: {exc.strerror}"
    if stat.S_ISDIR(st.st_mode):
        return ((f"{name!r} is a directory, not an audio file. Rename or move it out of the "
                f"dataset."), "a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = _SPECIAL_FILES.get(stat.S_IFMT(st.st_mode), "a special file")
        return ((f"{name!r} is {kind}, not a regular file, so it was not opened. Replace it "
                f"with an audio file or remove it from the dataset."), f"{kind}, not a file")
    if st.st_size == 0:
        return f"audio file {name!r} is empty (0 bytes). {ADVICE}", "empty file (0 bytes)"
    if not os.access(name, os.R_OK):
        return denied
    return None


_SPECIAL_FILES = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def undecodable(path: str, shown: str, sf_error: Exception) -> tuple[str, str]:
    """(message, reason): why libsndfile (and audioread) could not decode ``shown``."""
    detail = getattr(sf_error, "error_string", None) or str(sf_error)
    detail = detail.strip().rstrip(".")
    if "not recognised" in detail.lower():
        if _looks_like_text(path):
            reason = "it contains text, not audio (is it a renamed text or HTML file?)"
        else:
            reason = "it is not in a recognised audio format, or its header is damaged"
    elif "opening" in str(sf_error).lower():
        reason = "its header is damaged or truncated"
    else:
        reason = "its audio data is damaged or truncated"
    message = f"cannot read audio file {shown!r}: {reason} (decoder said: {detail}). {ADVICE}"
    return message, reason.split(" (")[0]


def _looks_like_text(name: str) -> bool:
    try:
        with open(name, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def non_finite_message(name: str) -> str:
    return (f"audio file {name!r} contains NaN or infinite sample values, which no "
            f"feature can be computed from. {ADVICE}")


def no_samples(name: str, offset: float, info: Any) -> tuple[str, str]:
    if offset:
        return (
            (f"audio file {name!r} has no samples after offset={offset} s (the file lasts "
            f"{info.duration_s:.3f} s). Use a smaller offset or remove the clip."),
            "no samples after the offset",
        )
    return f"audio file {name!r} contains no audio samples. {ADVICE}", "no audio samples"


NON_FINITE = "NaN or infinite samples"
