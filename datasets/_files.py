"""The files behind the real datasets: where they are looked for, how they are checked and fetched.

Each real dataset keeps its files in one folder, named in its loader (``mnist``, ``fashion-mnist``,
``emnist``, ``cifar10``). A file is searched for in this order:

1. ``data_dir()/<folder>/<file>``, where :func:`data_dir` is ``$CUTBENCH_DATA``, else the user cache
   directory (``$XDG_CACHE_HOME/cutbench``, by default ``~/.cache/cutbench``);
2. well-known local installs, :data:`KNOWN_LOCATIONS` (Debian's ``dataset-fashion-mnist`` package
   puts Fashion-MNIST under ``/usr/share/datasets/fashion-mnist/``);
3. the archive that holds the file upstream (EMNIST's ``gzip.zip``, ``cifar-10-python.tar.gz``), in
   the same folders;
4. a download from the canonical source into ``data_dir()/<folder>/``, only when downloads are
   allowed (see :func:`downloads_allowed`).

A copy is used only when it matches its published checksum (md5, and sha256 where known); a
re-compressed ``.gz`` (Debian's) is accepted when its decompressed content has the known md5. So
the data are the same whichever way they arrived, and the download policy is not a dataset
parameter: it never changes a dataset's params or fingerprint. When no valid copy is found the
error names the file, every path searched with what was wrong there, and how to get the file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import sys
import tarfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from cutbench import CutbenchError, CutbenchWarning, DataUnavailableError
from cutbench.atomic import write_atomically
from cutbench.progress import progress_bar

DATA_ENV = "CUTBENCH_DATA"
DOWNLOAD_ENV = "CUTBENCH_DOWNLOAD"

KNOWN_LOCATIONS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
"""Dataset folder -> local installs searched after ``data_dir()/<folder>``."""

DOWNLOAD_TIMEOUT = 10.0
"""Seconds a download may wait for the server, to connect or for each block of data, before it fails.

Short on purpose: a server that accepts a connection and never answers must not make a study look
hung. A failed download is remembered for the rest of the process (see :func:`fetch_files`)."""

_failed_downloads: dict[str, list[str]] = {}  # "<folder>/<file>" -> why its download failed, in this process

_HASH_CHUNK = 1 << 22

_download_setting: bool | None = None


def data_dir() -> Path:
    """The folder holding cutbench's data: ``$CUTBENCH_DATA``, else the user cache directory.

    The cache directory is ``$XDG_CACHE_HOME/cutbench``, or ``~/.cache/cutbench`` when
    ``XDG_CACHE_HOME`` is unset. The folder need not exist.
    """
    configured = os.environ.get(DATA_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "cutbench"


def allow_downloads(allowed: bool | None) -> None:
    """Allow (True) or forbid (False) downloads in this process; None defers to ``$CUTBENCH_DOWNLOAD``."""
    global _download_setting
    if allowed is not None and not isinstance(allowed, bool):
        raise CutbenchError(f"allow_downloads takes True, False or None (follow ${DOWNLOAD_ENV}); got {allowed!r}.")
    _download_setting = allowed


def downloads_allowed() -> bool:
    """Whether a missing dataset file may be downloaded.

    The setting of :func:`allow_downloads` wins; otherwise ``$CUTBENCH_DOWNLOAD`` decides:
    unset, empty, ``1``, ``true``, ``yes`` or ``on`` allow downloads (the default for users),
    ``0``, ``false``, ``no`` or ``off`` forbid them (the test suite sets 0).
    """
    if _download_setting is not None:
        return _download_setting
    value = os.environ.get(DOWNLOAD_ENV, "").strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise CutbenchError(f"${DOWNLOAD_ENV}={value!r} is not understood; set it to 1/true/yes/on to allow downloads "
                        "or to 0/false/no/off to forbid them.")


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset and how to recognise a good copy of it.

    Attributes
    ----------
    name : str
        Path relative to the dataset folder (may contain ``/``). Names ending in ``.gz`` are
        gzip streams and are handed back decompressed.
    md5, sha256 : str or None
        Hex digests of the file as its publisher distributes it; at least one is given.
    size : int or None
        Size in bytes, when known; a shorter copy is reported as truncated.
    raw_md5 : str or None
        md5 of the decompressed content of a ``.gz``: a copy whose own checksums differ is still
        accepted when its content matches (re-compressed copies such as Debian's).
    urls : tuple of str
        Where to download the file, tried in order.
    archive : FileSpec or None
        An archive holding this file upstream, searched after the loose file and downloaded
        instead of it; ``member`` is the file's path inside that archive.
    """

    name: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    raw_md5: str | None = None
    urls: tuple[str, ...] = ()
    archive: FileSpec | None = None
    member: str | None = None

    def __post_init__(self):
        if not (self.md5 or self.sha256):
            raise CutbenchError(f"FileSpec {self.name!r} needs a known checksum (md5 or sha256).")
        if (self.archive is None) != (self.member is None):
            raise CutbenchError(f"FileSpec {self.name!r}: give both archive and member, or neither.")

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(algorithm for algorithm in ("md5", "sha256") if getattr(self, algorithm))


@dataclass(frozen=True)
class LoadedFile:
    """A verified file: its content (decompressed for ``.gz``) and where it was read."""

    content: bytes
    source: str


# --------------------------------------------------------------------------- IDX format


_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_TYPE_NAMES = "08 (uint8), 09 (int8), 0B (int16), 0C (int32), 0D (float32), 0E (float64)"


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode an (uncompressed) IDX file: MNIST's format.

    The file is a big-endian magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` 4-byte
    big-endian dimension sizes, then the values in C order.

    Parameters
    ----------
    data : bytes
        The whole file.
    name : str
        Used in error messages.

    Returns
    -------
    ndarray
        A read-only view of ``data`` with the file's shape and dtype (uint8 for MNIST).

    Raises
    ------
    CutbenchError
        Bad magic number, a header or data section shorter than the dimensions say, or bytes
        left over after the data.
    """
    if len(data) < 4:
        raise CutbenchError(f"{name}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number.")
    type_code, ndim = data[2], data[3]
    if data[0] or data[1] or type_code not in _IDX_TYPES or ndim == 0:
        hint = " It is gzip-compressed: decompress it first." if data[:2] == b"\x1f\x8b" else ""
        raise CutbenchError(f"{name}: bad IDX magic number 0x{data[:4].hex()}; expected 0x0000TTDD with type TT one "
                            f"of {_IDX_TYPE_NAMES} and DD >= 1 dimensions (0x00000803 for images, 0x00000801 for "
                            f"labels).{hint}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise CutbenchError(f"{name}: truncated IDX file: {len(data)} bytes, but its {ndim} dimension sizes need a "
                            f"{header_size}-byte header.")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _IDX_TYPES[type_code]
    count = int(np.prod(shape, dtype=np.int64))
    expected, found = count * dtype.itemsize, len(data) - header_size
    if found < expected:
        raise CutbenchError(f"{name}: truncated IDX file: shape {shape} needs {expected:,} data bytes, found "
                            f"{found:,}. Delete the file and fetch it again.")
    if found > expected:
        raise CutbenchError(f"{name}: {found - expected:,} unexpected bytes after the data of shape {shape}; "
                            "the file is corrupt or not an IDX file.")
    return np.frombuffer(data, dtype=dtype, count=count, offset=header_size).reshape(shape)


# --------------------------------------------------------------------------- verification


def _bytes_digests(spec: FileSpec, data: bytes) -> dict[str, str]:
    return {algorithm: hashlib.new(algorithm, data).hexdigest() for algorithm in spec.algorithms}


def _file_digests(spec: FileSpec, path: Path) -> tuple[int, dict[str, str]]:
    hashers = {algorithm: hashlib.new(algorithm) for algorithm in spec.algorithms}
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            size += len(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
    return size, {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def _mismatch(spec: FileSpec, size: int, digests: dict[str, str]) -> str | None:
    """What is wrong with a copy of ``size`` bytes and these digests, or None when it is the file."""
    if spec.size is not None and size != spec.size:
        kind = "truncated" if size < spec.size else "wrong size"
        return f"{kind}: {size:,} bytes, expected {spec.size:,}"
    for algorithm in spec.algorithms:
        expected = getattr(spec, algorithm)
        if digests[algorithm] != expected:
            return f"checksum mismatch: {algorithm} {digests[algorithm]}, expected {expected}"
    return None


def _gunzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise CutbenchError(f"not a valid gzip stream ({error})") from error


def _accept(spec: FileSpec, data: bytes) -> tuple[bytes | None, str | None]:
    """``(content, None)`` when ``data`` is a good copy of ``spec``, else ``(None, problem)``."""
    compressed = spec.name.endswith(".gz")
    problem = _mismatch(spec, len(data), _bytes_digests(spec, data))
    if problem is None:
        try:
            return (_gunzip(data) if compressed else data), None
        except CutbenchError as error:
            return None, str(error)
    if not (compressed and spec.raw_md5):
        return None, problem
    try:
        content = _gunzip(data)
    except CutbenchError as error:
        return None, f"{problem}; {error}"
    content_md5 = hashlib.md5(content).hexdigest()
    if content_md5 == spec.raw_md5:
        return content, None
    return None, f"{problem}; decompressed md5 {content_md5}, expected {spec.raw_md5}"


# --------------------------------------------------------------------------- archives


def _read_members(path: Path, members: set[str]) -> dict[str, bytes]:
    """The members of a zip or tar(.gz) archive named in ``members`` that it holds, in one pass."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            present = members & set(archive.namelist())
            return {member: archive.read(member) for member in present}
    found = {}
    with tarfile.open(path, "r|*") as archive:  # a stream: one sequential pass over a .tar.gz
        for info in archive:
            if info.name in members and info.isfile():
                found[info.name] = archive.extractfile(info).read()
                if len(found) == len(members):
                    break
    return found


def _load_from_archive(archive: FileSpec, specs: list[FileSpec], locations: list[Path],
                       searched: dict[FileSpec, list[str]]) -> dict[FileSpec, LoadedFile]:
    """Members ``specs`` of ``archive``, from the first valid copy of the archive in ``locations``."""
    for location in locations:
        path = location / archive.name
        if not path.is_file():
            for spec in specs:
                searched[spec].append(f"{path}: not found")
            continue
        problem = _mismatch(archive, *_file_digests(archive, path))
        members = {}
        if problem is None:
            try:
                members = _read_members(path, {spec.member for spec in specs})
            except (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile) as error:
                problem = f"unreadable archive ({error})"
        if problem is not None:
            for spec in specs:
                searched[spec].append(f"{path}: {problem}")
            continue
        loaded = {}
        for spec in specs:
            where = f"{path}:{spec.member}"
            if spec.member not in members:
                searched[spec].append(f"{where}: not in the archive")
                continue
            content, problem = _accept(spec, members[spec.member])
            if problem is None:
                loaded[spec] = LoadedFile(content, where)
            else:
                searched[spec].append(f"{where}: {problem}")
        return loaded
    return {}


# --------------------------------------------------------------------------- download


def download(url: str, destination: Path, spec: FileSpec) -> None:
    """Download ``url`` to ``destination`` with a progress bar, keeping it only if it matches ``spec``.

    The bytes go to a temporary file beside ``destination``, are checked against the size and
    checksums of ``spec`` and are then renamed into place atomically, so an interrupted or
    corrupt download never leaves a file that looks complete.

    Raises
    ------
    CutbenchError
        The transfer failed or the downloaded bytes are not the expected file.
    """
    sys.stderr.write(f"downloading {destination.name} from {url} (waiting at most {DOWNLOAD_TIMEOUT:g} s for the "
                     "server)\n")
    sys.stderr.flush()

    def fetch_checked(output) -> None:
        hashers = {algorithm: hashlib.new(algorithm) for algorithm in spec.algorithms}
        size = 0
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                length = response.headers.get("Content-Length")
                progress = progress_bar(int(length) if length and length.isdigit() else None,
                                        f"downloading {destination.name}", "B", unit_scale=True)
                while chunk := response.read(1 << 20):
                    output.write(chunk)
                    size += len(chunk)
                    for hasher in hashers.values():
                        hasher.update(chunk)
                    progress.update(len(chunk))
                progress.close()
        except (OSError, http.client.HTTPException) as error:
            raise CutbenchError(f"download of {url} failed: {error}") from error
        problem = _mismatch(spec, size, {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()})
        if problem is not None:
            raise CutbenchError(f"download of {url} is not the expected {spec.name}: {problem}")

    try:
        write_atomically(destination, fetch_checked)
    except OSError as error:
        raise CutbenchError(f"cannot write {destination}: {error.strerror or error}; check the folder's "
                            "permissions and free space, or point $CUTBENCH_DATA elsewhere.") from error


def _download_first(spec: FileSpec, destination: Path) -> list[str]:
    """Try ``spec.urls`` in order until one downloads; the failures, one line each ([] on success)."""
    failures = []
    for url in spec.urls:
        try:
            download(url, destination, spec)
            return []
        except CutbenchError as error:
            failures.append(str(error))
    return failures or [f"no download URL is known for {spec.name}"]


# --------------------------------------------------------------------------- search


def _missing_error(dataset: str, folder: str, spec: FileSpec, searched: list[str],
                   failures: list[str]) -> DataUnavailableError:
    target = data_dir() / folder
    wanted = f"{folder}/{spec.name}"
    source = spec.archive or spec
    url = source.urls[0] if source.urls else "its publisher's site"
    if spec.archive is not None:
        wanted += f" (or {folder}/{spec.archive.name})"
        how = f"download {url} (it holds {spec.member}) into {target}"
    else:
        how = f"download {url} into {target}"
    lines = [f"dataset {dataset!r}: no valid copy of {spec.name} (md5 {spec.md5 or '-'}, sha256 {spec.sha256 or '-'}).",
             "Searched:", *(f"  {line}" for line in searched)]
    if failures:
        lines += ["Download failed:", *(f"  {line}" for line in failures)]
    else:
        lines.append(f"Downloads are off (cutbench run --no-download, ${DOWNLOAD_ENV}=0 or "
                     "cutbench.datasets.allow_downloads(False)).")
    lines.append(f"To get it: {how}, or set ${DATA_ENV} to a folder holding {wanted}.")
    return DataUnavailableError("\n".join(lines))


def _load_loose(spec: FileSpec, locations: list[Path], searched: list[str]) -> LoadedFile | None:
    for location in locations:
        path = location / spec.name
        if not path.is_file():
            searched.append(f"{path}: not found")
            continue
        content, problem = _accept(spec, path.read_bytes())
        if problem is None:
            return LoadedFile(content, str(path))
        searched.append(f"{path}: {problem}")
    return None


def fetch_files(dataset: str, folder: str, specs: Sequence[FileSpec]) -> list[LoadedFile]:
    """Verified contents of ``specs``, found as the module docstring describes (downloading if allowed).

    Parameters
    ----------
    dataset : str
        The dataset's name, for messages.
    folder : str
        The dataset's folder under :func:`data_dir` (and the key of :data:`KNOWN_LOCATIONS`).
    specs : sequence of FileSpec

    Returns
    -------
    list of LoadedFile
        In the order of ``specs``; ``.gz`` files decompressed.

    Raises
    ------
    CutbenchError
        A file has no valid copy anywhere and could not be downloaded; the message names the
        file, each path searched with its problem, and how to get the file.

    Warns
    -----
    CutbenchWarning
        A file was found, but an invalid copy of it was skipped on the way (named with its problem).
    """
    home = data_dir() / folder
    locations = [home, *KNOWN_LOCATIONS.get(folder, ())]
    searched: dict[FileSpec, list[str]] = {spec: [] for spec in specs}
    loaded: dict[FileSpec, LoadedFile] = {}
    for spec in specs:
        found = _load_loose(spec, locations, searched[spec])
        if found is not None:
            loaded[spec] = found
    archives = {spec.archive for spec in specs if spec not in loaded and spec.archive is not None}
    for archive in archives:
        members = [spec for spec in specs if spec not in loaded and spec.archive == archive]
        loaded.update(_load_from_archive(archive, members, locations, searched))
    for spec in specs:
        if spec in loaded:
            continue
        if not downloads_allowed():
            raise _missing_error(dataset, folder, spec, searched[spec], [])
        downloaded = spec.archive or spec
        remembered = f"{folder}/{downloaded.name}"
        if remembered in _failed_downloads:  # one attempt per file and process, not one per cell
            raise _missing_error(dataset, folder, spec, searched[spec],
                                 [f"(earlier in this run) {line}" for line in _failed_downloads[remembered]])
        failures = _download_first(downloaded, home / downloaded.name)
        if failures:
            _failed_downloads[remembered] = failures
        if not failures:
            if spec.archive is None:
                loaded[spec] = _load_loose(spec, [home], searched[spec])
            else:
                members = [other for other in specs if other not in loaded and other.archive == spec.archive]
                loaded.update(_load_from_archive(spec.archive, members, [home], searched))
        if loaded.get(spec) is None:
            failures = failures or [f"{home / downloaded.name} was downloaded but is not usable (see above)"]
            raise _missing_error(dataset, folder, spec, searched[spec], failures)
    for spec in specs:
        used = loaded[spec].source + ":"
        skipped = [line for line in searched[spec] if not (line.endswith(": not found") or line.startswith(used))]
        if skipped:
            warnings.warn(CutbenchWarning(f"dataset {dataset!r}: skipped invalid copies of {spec.name} "
                                          f"({'; '.join(skipped)}); used {loaded[spec].source}."), stacklevel=3)
    return [loaded[spec] for spec in specs]


# --------------------------------------------------------------------------- subsampling


def subsample_indices(dataset: str, n_available: int, n, random_state: int, unit: str = "points") -> np.ndarray | None:
    """Sorted indices of ``n`` of ``n_available`` rows drawn uniformly without replacement; None for all.

    The draw is ``np.random.default_rng(random_state).choice(n_available, n, replace=False)``,
    sorted so that the rows keep their file order (the scheme the harness uses for training subsets).
    """
    if random_state < 0:
        raise CutbenchError(f"dataset {dataset!r}: random_state={random_state} is too small; use random_state >= 0 "
                            "(a non-negative integer seed).")
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int):
        raise CutbenchError(f"dataset {dataset!r} parameter 'n' must be an integer or None (all {n_available:,} "
                            f"{unit}); got {n!r} ({type(n).__name__}).")
    if n < 1:
        raise CutbenchError(f"dataset {dataset!r}: n={n} is too small; use 1 <= n <= {n_available} or n=None for all.")
    if n > n_available:
        raise CutbenchError(f"dataset {dataset!r}: n={n} is larger than the dataset, which has {n_available:,} "
                            f"{unit}; use n <= {n_available} or n=None for all of them.")
    return np.sort(np.random.default_rng(random_state).choice(n_available, size=n, replace=False))
