"""Machinery: writing a file so that a crash never leaves half of it. Its own module, with nothing but the
standard library, so that the data scripts (data/synth.py) can use it without importing the data loader, which
imports them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomic(path, text: str) -> None:
    """Write a text file atomically: a temp file of this process's own in the same folder (so that processes
    writing the same file at once, e.g. torchrun's ranks, never take each other's), then os.replace over `path`.
    A crash or Ctrl-C leaves the old file or the new one, never half of one, and no temp file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
