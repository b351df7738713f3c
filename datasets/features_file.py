"""A user's own features and labels from a file: ``load_dataset("features_file", path=...)``.

Bring embeddings computed elsewhere (CLIP features of ImageNet, MCR² features of CIFAR-10, ...)
to the benchmark. Accepted files:

* ``.npz`` with arrays ``X`` and ``y``, or ``features`` and ``labels``;
* ``.npy`` features with the labels in a second ``.npy`` given as ``labels_path``;
* ``.parquet`` (or ``.pq``) with a ``label`` column; the features are the other columns, all
  numeric, or a single column holding one equal-length vector per row.

Features must be a 2-D numeric array without NaN or inf; they are returned as float32. Labels are
integers or strings, one per row; they are mapped to ``0 .. k-1`` in sorted order and, unless they
already were ``0 .. k-1``, ``meta["class_names"]`` lists the original values. Arrays are read with
``allow_pickle=False``: no code in a data file is ever run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cutbench import CutbenchError, DataUnavailableError
from cutbench.datasets._files import subsample_indices
from cutbench.datasets.base import register_dataset

NPZ_KEYS = (("X", "y"), ("features", "labels"))
"""Accepted (features, labels) key pairs of an .npz file, in order of preference."""
LABEL_COLUMN = "label"
SUFFIXES = (".npy", ".npz", ".parquet", ".pq")

_DATASET = "features_file"


def _fail(problem: str, error=CutbenchError) -> CutbenchError:
    return error(f"dataset {_DATASET!r}: {problem}")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise _fail(f"cannot read {path} as a numeric .npy array ({error}); save it with np.save(path, "
                    "np.asarray(values, dtype=np.float32)) (object arrays are refused).") from error


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = sorted(archive.files)
            pair = next(((f, l) for f, l in NPZ_KEYS if f in keys and l in keys), None)
            arrays = (archive[pair[0]], archive[pair[1]]) if pair else None
    except (ValueError, OSError, EOFError) as error:
        raise _fail(f"cannot read {path} as an .npz archive of numeric arrays ({error}).") from error
    if arrays is not None:
        return arrays
    for features_key, labels_key in NPZ_KEYS:
        if features_key in keys:
            raise _fail(f"labels missing: {path} holds {keys}, with features under {features_key!r} but no "
                        f"{labels_key!r}; save them with np.savez(path, {features_key}=features, "
                        f"{labels_key}=labels).")
    accepted = " or ".join(f"{f!r} and {l!r}" for f, l in NPZ_KEYS)
    raise _fail(f"{path} holds arrays {keys}; expected {accepted}: np.savez(path, X=features, y=labels).")


def _read_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        frame = pd.read_parquet(path)
    except (ValueError, OSError, ImportError) as error:
        raise _fail(f"cannot read {path} as parquet ({error}).") from error
    if LABEL_COLUMN not in frame.columns:
        raise _fail(f"labels missing: {path} has no {LABEL_COLUMN!r} column (columns: {list(frame.columns)}); "
                    f"add the labels as a column named {LABEL_COLUMN!r}.")
    labels = frame.pop(LABEL_COLUMN)
    if labels.isna().any():
        raise _fail(f"{int(labels.isna().sum())} label(s) missing in column {LABEL_COLUMN!r} of {path}; "
                    "drop those rows or fill them in.")
    labels = labels.to_numpy()
    if labels.dtype == object:
        labels = labels.astype(str) if all(isinstance(value, str) for value in labels) else labels
    columns = list(frame.columns)
    if not columns:
        raise _fail(f"{path} has a {LABEL_COLUMN!r} column but no feature columns.")
    if all(pd.api.types.is_numeric_dtype(frame[column]) for column in columns):
        return frame.to_numpy(dtype=np.float64, na_value=np.nan), labels
    values = frame[columns[0]].to_numpy()
    if len(columns) == 1 and all(isinstance(value, (list, tuple, np.ndarray)) for value in values):
        lengths = {len(value) for value in values}
        if len(lengths) > 1:
            raise _fail(f"the vectors in column {columns[0]!r} of {path} have different lengths "
                        f"({sorted(lengths)[:5]}); every row needs the same number of features.")
        try:
            return np.stack([np.asarray(value, dtype=np.float64) for value in values]), labels
        except (TypeError, ValueError) as error:
            raise _fail(f"column {columns[0]!r} of {path} holds non-numeric vectors ({error}).") from error
    other = [f"{column!r} ({frame[column].dtype})" for column in columns
             if not pd.api.types.is_numeric_dtype(frame[column])]
    raise _fail(f"non-numeric feature column(s) {', '.join(other)} in {path}; features must be numeric columns, "
                "or a single column of equal-length vectors. Drop or encode the others.")


def _read(path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not path:
        raise _fail(f"give path=<features file> ({', '.join(SUFFIXES)}).")
    file = Path(path).expanduser()
    if file.suffix not in SUFFIXES:
        raise _fail(f"{file} has suffix {file.suffix!r}; accepted: {', '.join(SUFFIXES)}.")
    if not file.is_file():
        raise _fail(f"features file {file} not found (looked at {file.absolute()}).", DataUnavailableError)
    if file.suffix != ".npy":
        if labels_path:
            raise _fail(f"labels_path is for .npy features only; {file.suffix} files hold their own labels "
                        f"(.npz: key 'y' or 'labels'; parquet: column {LABEL_COLUMN!r}).")
        X, y = _read_npz(file) if file.suffix == ".npz" else _read_parquet(file)
        return X, y, [str(file)]
    if not labels_path:
        raise _fail(f"labels missing: {file} holds features only; pass labels_path=<labels .npy> (one label per "
                    "row), or save both in one file with np.savez(path, X=features, y=labels).")
    labels_file = Path(labels_path).expanduser()
    if not labels_file.is_file():
        raise _fail(f"labels file {labels_file} not found (looked at {labels_file.absolute()}).",
                    DataUnavailableError)
    return _load_npy(file), _load_npy(labels_file), [str(file), str(labels_file)]


def _check_features(X: np.ndarray, source: str) -> np.ndarray:
    if X.ndim != 2:
        fix = "X.reshape(len(X), -1)" if X.ndim > 2 else "X.reshape(-1, 1) for a single feature"
        raise _fail(f"features in {source} must be 2-D (n_samples, n_features); got shape {X.shape}. "
                    f"Reshape them, e.g. {fix}.")
    if X.dtype.kind not in "fiub":
        raise _fail(f"features in {source} must be numeric; got dtype {X.dtype}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise _fail(f"features in {source} are empty (shape {X.shape}).")
    X = np.ascontiguousarray(X, dtype=np.float32)
    finite = np.isfinite(X)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        row = int(bad_rows[0])
        column = int(np.flatnonzero(~finite[row])[0])
        raise _fail(f"features in {source} contain NaN or inf (or values beyond float32) in {len(bad_rows):,} "
                    f"row(s), the first at row {row}, column {column}; drop or impute those rows first.")
    return X


def _encode_labels(y: np.ndarray, n_rows: int, source: str) -> tuple[np.ndarray, list | None]:
    """Labels as 0..k-1 and the original values (None when they already were 0..k-1)."""
    if y.ndim != 1:
        raise _fail(f"labels in {source} must be 1-D (one per row); got shape {y.shape}. Use y.ravel() if it "
                    "holds one label per row.")
    if len(y) != n_rows:
        raise _fail(f"{n_rows:,} feature rows but {len(y):,} labels in {source}; every row needs exactly one label.")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise _fail(f"labels in {source} contain NaN or inf; drop those rows or fill in their labels.")
        if not np.array_equal(y, np.round(y)):
            raise _fail(f"labels in {source} are non-integer floats (e.g. {y[y != np.round(y)][0]}); labels must be "
                        "integers or strings (class ids, not regression targets).")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iubUS":
        raise _fail(f"labels in {source} must be integers or strings; got dtype {y.dtype}.")
    if y.dtype.kind == "S":
        y = y.astype(str)
    values, encoded = np.unique(y, return_inverse=True)
    encoded = encoded.astype(np.int64)
    if y.dtype.kind in "iub" and np.array_equal(values, np.arange(len(values))):
        return encoded, None
    return encoded, values.tolist()


@register_dataset("features_file")
def features_file(path="", labels_path="", n=None, random_state=0):
    """Features and labels from the file ``path`` (see the module docstring for the formats).

    ``labels_path`` names the labels ``.npy`` when ``path`` is an ``.npy``. ``n`` keeps that many
    rows drawn uniformly without replacement (seeded by ``random_state``, file order kept);
    ``n=None`` keeps all. The whole file is validated even when ``n`` is given.
    """
    X, y, files = _read(path, labels_path)
    source = " and ".join(files)
    X = _check_features(X, source)
    y, class_names = _encode_labels(np.asarray(y), len(X), source)
    rows = subsample_indices(_DATASET, len(X), n, random_state, unit="rows")
    if rows is not None:
        X, y = X[rows], y[rows]
    extra_meta = {"files": files}
    if class_names is not None:
        extra_meta["class_names"] = class_names
    return X, y, extra_meta
