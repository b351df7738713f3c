"""Atomic file writes: a file appears whole or not at all, with the mode a plain ``open`` gives.

Every writer of lasting files (the result store, the feature cache, dataset downloads) goes through
:func:`write_atomically`, so a process killed at any moment leaves either the old file, the new one,
or nothing, never half a file; and files are as readable as the umask allows (``mkstemp`` alone would
make them private to the owner).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

TEMPORARY_SUFFIX = ".part"
"""Suffix of the hidden temporary file (``.<name>.<random>.part``) that becomes the file."""


def new_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def probe_writable(folder: Path) -> None:
    """Create ``folder`` if missing and check a file can be created in it; raises OSError otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder, prefix=".write-probe-"):
        pass


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create ``path`` from what ``write(stream)`` writes, atomically.

    ``write`` may raise (a failed download, a checksum that does not match): the temporary file is
    then removed and ``path`` is left as it was. ``OSError`` (a full disk, a read-only folder) is
    raised as it is, for the caller to word for its own users.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, new_file_mode())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
