"""Drawn figures kept between reports of the same result files, so that a second report draws nothing.

Drawing is most of a report's time: on the 31 measurements of a ``make run`` folder, rendering
the eight figures as PNG and SVG took 3.7 of the 5.7 CPU seconds, and every figure is a pure
function of what it reads. A drawing is therefore kept under a key that covers all of that:

- the bytes of every result file, in the order they are read (records are pooled and
  de-duplicated in that order), and the ``--runtime`` filter;
- the figure's name;
- fnbench's own source (every file of the package: a change to any code that shapes a number
  or a mark draws afresh), the versions of Python, numpy, pandas and matplotlib, and matplotlib's
  settings (``rcParams``, where a ``matplotlibrc`` changes fonts or sizes).

What is kept is the PNG and the SVG, or the reason a figure was not drawn. A PNG from the cache
is byte for byte the one drawing would give (matplotlib's Agg output is deterministic); an SVG
keeps the date and element ids of the drawing it came from.

Where: ``$FNBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/fnbench``, else ``~/.cache/fnbench``, in
``report-figures/``; ``FNBENCH_CACHE_DIR=`` (set, empty) turns the cache off. Entries are written
whole (a temporary name, then a rename), the :data:`KEEP` most recently used are kept, and a cache
that cannot be read or written is passed over: every figure is then drawn, as without it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["FigureCache", "KEEP", "cache_dir"]

#: Entries kept (about 7 per report of one device; each a few hundred kB).
KEEP = 256
_MAGIC = b"fnbench-figure 1\n"


def cache_dir() -> Path | None:
    """Where drawn figures are kept, or ``None`` when ``FNBENCH_CACHE_DIR`` is set empty (no cache)."""
    own = os.environ.get("FNBENCH_CACHE_DIR")
    if own is not None:
        return Path(own) / "report-figures" if own else None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory to be found: no cache
            return None
    return Path(base) / "fnbench" / "report-figures"


def _code_digest() -> str:
    """Every file of the fnbench package, and the software and settings that draw with it."""
    import matplotlib
    import numpy
    import pandas

    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix not in (".pyc", ".pyo"):
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    versions = (sys.version, numpy.__version__, pandas.__version__, matplotlib.__version__)
    h.update(repr(versions).encode())
    # the stored settings as they are: reading rcParams["backend"] through the mapping would resolve the
    # backend, which imports pyplot
    settings = sorted((k, repr(v)) for k, v in dict.items(matplotlib.rcParams) if k != "backend")
    h.update(repr(settings).encode())
    return h.hexdigest()


def inputs_digest(files: Iterable[Path], runtimes: Iterable[str] | None) -> str:
    """The result files' bytes in reading order and the runtime filter."""
    h = hashlib.sha256()
    for f in files:
        data = Path(f).read_bytes()
        h.update(len(data).to_bytes(8, "little") + data)
    h.update(repr(sorted(runtimes) if runtimes else None).encode())
    return h.hexdigest()


class FigureCache:
    """The drawings of one report: :meth:`get` before drawing a figure, :meth:`put` after, :meth:`save` at the end.

    ``files`` and ``runtimes`` are what the report reads; nothing is saved when the files changed
    while it was being made (a run still writing them), since the drawings may then mix two states.
    """

    def __init__(self, files: list[Path], runtimes: Iterable[str] | None = None, root: Path | None = None) -> None:
        self.root = cache_dir() if root is None else root
        self.files, self.runtimes = list(files), list(runtimes or [])
        self._inputs = inputs_digest(self.files, self.runtimes) if self.root else ""
        self._base = hashlib.sha256((self._inputs + _code_digest()).encode()).hexdigest() if self.root else ""
        self._new: dict[str, tuple[bytes, bytes] | str] = {}

    def _path(self, name: str) -> Path:
        return self.root / hashlib.sha256(f"{self._base}\0{name}".encode()).hexdigest()[:40]

    def get(self, name: str) -> tuple[bytes, bytes] | str | None:
        """``(png, svg)`` or the reason it was not drawn, as last time; ``None`` when it must be drawn."""
        if not self.root:
            return None
        path = self._path(name)
        try:
            data = path.read_bytes()
            os.utime(path)  # recently used: kept longest
        except OSError:
            return None
        return _decode(data)

    def put(self, name: str, drawn: tuple[bytes, bytes] | str) -> None:
        """Remember a drawing (or why there is none), to be saved by :meth:`save`."""
        if self.root:
            self._new[name] = drawn

    def save(self) -> None:
        """Write the new drawings, unless the result files changed meanwhile; keep the :data:`KEEP` newest."""
        if not (self.root and self._new) or inputs_digest(self.files, self.runtimes) != self._inputs:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for name, drawn in self._new.items():
                path = self._path(name)
                tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
                tmp.write_bytes(_encode(drawn))
                os.replace(tmp, path)
            _prune(self.root)
        except OSError:
            pass  # a cache is only ever a shortcut


def _encode(drawn: tuple[bytes, bytes] | str) -> bytes:
    """``fnbench-figure 1``, then ``png <size of the PNG>`` or ``reason``, the payload's SHA-256, the payload."""
    if isinstance(drawn, str):
        head, payload = "reason", drawn.encode("utf-8")
    else:
        head, payload = f"png {len(drawn[0])}", drawn[0] + drawn[1]
    return _MAGIC + f"{head} {hashlib.sha256(payload).hexdigest()}\n".encode() + payload


def _decode(data: bytes) -> tuple[bytes, bytes] | str | None:
    """What :func:`_encode` wrote, or ``None`` for anything else (a cut or damaged entry)."""
    if not data.startswith(_MAGIC):
        return None
    head, _, payload = data[len(_MAGIC) :].partition(b"\n")
    *kind, digest = head.decode("ascii", errors="replace").split(" ")
    if hashlib.sha256(payload).hexdigest() != digest:
        return None
    if kind == ["reason"]:
        return payload.decode("utf-8")
    if len(kind) == 2 and kind[0] == "png" and kind[1].isdigit():
        return payload[: int(kind[1])], payload[int(kind[1]) :]
    return None


def _prune(root: Path) -> None:
    entries = []
    for p in root.iterdir():
        try:
            entries.append((p.stat().st_mtime, p))
        except OSError:
            continue
    for _, p in sorted(entries, reverse=True)[KEEP:]:
        p.unlink(missing_ok=True)
