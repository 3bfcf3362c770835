"""Where clips live: local folders, or object stores and web servers through fsspec.

A dataset root or manifest may be a local path or an fsspec URL
(``s3://bucket/prefix``, ``gs://...``, ``https://...``; ``file://`` is a
local path). Workers open each clip themselves from its location, so the
data never passes through the process that drives the run. Credentials come
from the usual environment of each library (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ...).

:class:`LocalTree` and :class:`RemoteTree` answer the few questions dataset
discovery asks (is this a file, a folder, what is in this folder) with one
interface; a remote tree is listed once, recursively, because object stores
answer one big listing faster than many small ones.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from typing import IO, Any

from ..errors import DatasetLayoutError

__all__ = ["Entry", "LocalTree", "RemoteTree", "is_url", "open_binary", "redact", "redact_text",
           "tree_for"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# A URL inside any text: scheme, optional user-info (user:password@), the rest up to
# whitespace or a quote. Its user-info and its query string (tokens, signatures) are
# the parts that may hold a secret.
_URL_IN_TEXT = re.compile(r"""\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s'"<>]*)""")


def is_url(location: str | os.PathLike[str]) -> bool:
    """True for an fsspec URL other than ``file://``.

    Examples
    --------
    >>> is_url("s3://bucket/x.wav"), is_url("/data/x.wav"), is_url("file:///data/x.wav")
    (True, False, False)
    """
    match = _SCHEME.match(os.fspath(location))
    return bool(match) and match.group(1).lower() != "file"


def local_path(location: str | os.PathLike[str]) -> str:
    """``file:///x`` as ``/x``; other local paths unchanged."""
    text = os.fspath(location)
    if text.lower().startswith("file://"):
        return text[len("file://"):] or "/"
    return text


def join(root: str, rel: str) -> str:
    """Location of ``rel`` (forward slashes) under ``root`` (a path or URL).

    A URL's query string (a signed URL's token) stays at the end.

    Examples
    --------
    >>> join("https://h/data?sig=x", "a/b.wav")
    'https://h/data/a/b.wav?sig=x'
    """
    if is_url(root):
        base, mark, query = root.partition("?")
        return base.rstrip("/") + "/" + rel + mark + query
    return os.path.join(root, rel)


def redact(location: str | os.PathLike[str]) -> str:
    """A location as it may be stored, logged or printed: no user-info, query or fragment.

    ``http://user:secret@host/x?token=t`` becomes ``http://host/x``; a local
    path is returned unchanged. Workers still get the whole location: only
    what leaves the run (files, messages, the lock) is redacted.

    Examples
    --------
    >>> redact("https://me:pw@example.org/clips?sig=abc#top")
    'https://example.org/clips'
    >>> redact("/data/my clips")
    '/data/my clips'
    """
    return redact_text(os.fspath(location)) if is_url(location) else os.fspath(location)


def redact_text(text: str) -> str:
    """``text`` with the user-info and query string of every URL in it removed.

    For messages that may quote a URL (a library's error about a clip it
    could not open, the command line in the lock file).

    Examples
    --------
    >>> redact_text("cannot open s3://k:s@bucket/a.wav?X-Amz-Signature=1: denied")
    'cannot open s3://bucket/a.wav: denied'
    """
    def clean(match: re.Match) -> str:
        rest = match.group(2)
        # Punctuation after a URL ("...a.wav: not found") is the sentence's, not the URL's.
        trail = re.search(r"[.,;:)\]]*$", rest).group(0)
        rest = rest[:len(rest) - len(trail)]
        authority, slash, path = rest.partition("/")
        authority = authority.rpartition("@")[2]
        path = re.split(r"[?#]", path, maxsplit=1)[0]
        if not slash:
            authority = re.split(r"[?#]", authority, maxsplit=1)[0]
        return match.group(1) + authority + slash + path + trail

    return _URL_IN_TEXT.sub(clean, text)


def open_binary(location: str) -> IO[bytes]:
    """Open a URL for reading (seekable, read-ahead cached); the caller closes it.

    Raises
    ------
    FileNotFoundError, PermissionError, OSError
        As the file system reports them.
    """
    import fsspec

    return fsspec.open(location, "rb").open()


@dataclasses.dataclass(frozen=True)
class Entry:
    """One item of a folder listing."""

    name: str
    is_dir: bool
    # Identity of a folder reached through a symlink (to stop loops), else None.
    identity: tuple[int, int] | None = None


class LocalTree:
    """A dataset root on a local (or mounted) file system."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(local_path(root))

    def location(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def exists(self) -> bool:
        return os.path.exists(self.root)

    def is_file(self, rel: str) -> bool:
        return os.path.isfile(self.location(rel))

    def is_dir(self, rel: str = "") -> bool:
        return os.path.isdir(self.location(rel))

    def scan(self, rel: str) -> list[Entry]:
        """Entries of folder ``rel``; raises OSError when it cannot be listed."""
        entries = []
        with os.scandir(self.location(rel)) as it:
            for e in it:
                entries.append(Entry(e.name, _is_dir(e), _identity(e)))
        return entries

    def identity(self, rel: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.location(rel))
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        with open(self.location(rel), "rb") as f:
            yield f

    def stamp(self, rel: str) -> tuple[int, str]:
        """(size in bytes, change stamp) of a file; (-1, "missing") if it cannot be seen."""
        try:
            st = os.stat(self.location(rel))
        except OSError:
            return -1, "missing"
        if not stat.S_ISREG(st.st_mode):
            return 0, "not-a-file"
        return st.st_size, str(st.st_mtime_ns)


class RemoteTree:
    """A dataset root behind an fsspec URL, listed once, on first need.

    A web server (``https://``) usually cannot be listed: such a root needs
    a manifest, and a clip's size is then asked for file by file.
    """

    def __init__(self, root: str) -> None:
        import fsspec

        # A query string (a signed URL's token) belongs after each file's path.
        bare, mark, query = root.partition("?")
        self.root = bare.rstrip("/") + mark + query
        self._query = mark + query
        try:
            self.fs, base = fsspec.core.url_to_fs(bare.rstrip("/"))
        except (ImportError, ValueError) as exc:
            raise DatasetLayoutError(
                f"cannot read {redact(root)}: {redact_text(str(exc))}. Install the fsspec driver for this scheme "
                f"(s3fs for s3://, gcsfs for gs://, aiohttp for https://)."
            ) from None
        self.base = base.rstrip("/")
        self._web = self.root.lower().startswith(("http://", "https://"))
        self._listing: tuple[dict[str, dict[str, Any]], dict[str, dict[str, bool]]] | None = None

    def _listed(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, bool]]]:
        if self._listing is not None:
            return self._listing
        files: dict[str, dict[str, Any]] = {}
        children: dict[str, dict[str, bool]] = {"": {}}
        try:
            # A web server is never listed: an index page is not a listing (a manifest says
            # which files there are), and asking may need more rights than reading a file.
            listing = {} if self._web else self.fs.find(self.base, withdirs=True, detail=True)
        except (FileNotFoundError, NotImplementedError, ValueError):
            listing = {}
        except _remote_errors() as exc:
            raise DatasetLayoutError(f"cannot list {redact(self.root)}: "
                                     f"{redact_text(str(exc))}") from None
        for path, info in listing.items():
            name = path.rstrip("/")
            rel = posixpath.relpath(name, self.base) if name != self.base else ""
            if not rel or rel.startswith(".."):
                continue
            is_dir = info.get("type") == "directory"
            if not is_dir:
                files[rel] = info
            _add(children, rel, is_dir)
        self._listing = files, children
        return self._listing

    def location(self, rel: str) -> str:
        return join(self.root, rel) if rel else self.root

    def _path(self, rel: str) -> str:
        """What the file system opens for ``rel``."""
        return f"{self.base}/{rel}{self._query}"

    def exists(self) -> bool:
        return bool(self._listed()[0]) or self.fs.exists(self.base + self._query)

    def is_file(self, rel: str) -> bool:
        if rel in self._listed()[0]:
            return True
        try:  # servers that cannot be listed still answer for one file
            return bool(self.fs.isfile(self._path(rel)))
        except _remote_errors():
            return False

    def why_not(self, rel: str) -> str:
        """Why ``rel`` cannot be read, in a few words (its URL's secrets left out)."""
        try:
            self.fs.info(self._path(rel))
        except _remote_errors() as exc:
            return redact_text(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300]
        return "it is not a file"

    def is_dir(self, rel: str = "") -> bool:
        files, children = self._listed()
        return rel in children and (bool(rel) or bool(files))

    def scan(self, rel: str) -> list[Entry]:
        children = self._listed()[1]
        return [Entry(name, is_dir) for name, is_dir in sorted(children.get(rel, {}).items())]

    def identity(self, rel: str) -> None:
        return None

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        with self.fs.open(self._path(rel), "rb") as f:
            yield f

    def stamp(self, rel: str) -> tuple[int, str]:
        info = self._listed()[0].get(rel)
        if info is None:
            try:
                info = self.fs.info(self._path(rel))
            except _remote_errors():
                return -1, "missing"
        change = (info.get("ETag") or info.get("etag") or info.get("md5Hash")
                  or info.get("LastModified") or info.get("mtime") or info.get("updated") or "")
        return int(info.get("size") or 0), str(change)


def _remote_errors() -> tuple[type[BaseException], ...]:
    """What a remote file system raises when a file cannot be reached or read.

    fsspec's own drivers raise OSError and friends; its HTTP driver lets
    aiohttp's errors through (401 Unauthorized is a ``ClientResponseError``).
    """
    errors: tuple[type[BaseException], ...] = (OSError, ValueError, NotImplementedError)
    try:
        import aiohttp
    except ImportError:
        return errors
    return (*errors, aiohttp.ClientError)


def _add(children: dict[str, dict[str, bool]], rel: str, is_dir: bool) -> None:
    """Enter ``rel`` and its parent folders into a listing's tree."""
    parent, _, name = rel.rpartition("/")
    if is_dir:
        children.setdefault(rel, {})
    siblings = children.setdefault(parent, {})
    siblings[name] = siblings.get(name, False) or is_dir
    if parent:
        _add(children, parent, True)


def tree_for(root: str | os.PathLike[str]) -> LocalTree | RemoteTree:
    """The tree of a dataset root given as a path or URL."""
    text = os.fspath(root)
    return RemoteTree(text) if is_url(text) else LocalTree(text)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _identity(entry: os.DirEntry) -> tuple[int, int] | None:
    """(device, inode) of a folder reached through a symlink, to stop loops."""
    try:
        if not entry.is_symlink():
            return None
        st = entry.stat()
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)
