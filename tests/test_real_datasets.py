"""Real-dataset loaders on hand-made files: IDX parsing, checksums, search order, messages, E-MNIST
selection, CIFAR batches, user feature files, the MNIST8M-like generator; real data under ``data``."""

import gzip
import hashlib
import time
import urllib.request
import io
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cutbench import CutbenchError, CutbenchWarning
from cutbench.datasets import _files, cifar, load_dataset, mnist, mnist8m
from cutbench.datasets._files import FileSpec, parse_idx


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written from its definition (big-endian magic, sizes, data)."""
    codes = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
             np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
    big_endian = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, codes[big_endian], array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(big_endian).tobytes()


def spec_for(name: str, content: bytes, **extra) -> FileSpec:
    return FileSpec(name, md5=hashlib.md5(content).hexdigest(), sha256=hashlib.sha256(content).hexdigest(),
                    size=len(content), **extra)


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """An empty CUTBENCH_DATA with no well-known local installs and downloads off."""
    home = tmp_path / "data"
    home.mkdir()
    monkeypatch.setenv("CUTBENCH_DATA", str(home))
    monkeypatch.setattr(_files, "KNOWN_LOCATIONS", {})
    monkeypatch.setattr(_files, "_download_setting", None)
    monkeypatch.setattr(_files, "_failed_downloads", {})
    monkeypatch.setenv("CUTBENCH_DOWNLOAD", "0")
    return home


def fake_idx_source(folder, train, test, n_labels=10, gzipped=None):
    """``IdxSource`` whose checksums are those of the given (images, labels) arrays, and the files' bytes."""
    files, pairs = {}, []
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        pair = []
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            content = gzip.compress(idx_bytes(array), mtime=0)
            name = f"{prefix}-{kind}.gz"
            files[name] = content
            pair.append(spec_for(name, content, raw_md5=hashlib.md5(idx_bytes(array)).hexdigest()))
        pairs.append(tuple(pair))
    return mnist.IdxSource(folder, pairs[0], pairs[1], n_labels), files


def digit_images(n, seed=0, size=28):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


@pytest.fixture
def fake_mnist(data_home, monkeypatch):
    """Installs a 30 + 10 image MNIST in data_home/mnist; returns (train, test) arrays."""
    train, test = digit_images(30, 1), digit_images(10, 2)
    source, files = fake_idx_source("mnist", train, test)
    monkeypatch.setitem(mnist.SOURCES, "mnist", source)
    (data_home / "mnist").mkdir()
    for name, content in files.items():
        (data_home / "mnist" / name).write_bytes(content)
    return train, test


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("array", [
    np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    np.array([0, 9, 3], dtype=np.uint8),
    np.array([[-5, 7]], dtype=np.int8),
    np.array([1, -300, 70000], dtype=np.int32),
    np.array([[1.5, -2.25]], dtype=np.float32),
    np.array([np.pi], dtype=np.float64),
])
def test_parse_idx_reads_hand_made_files(array):
    parsed = parse_idx(idx_bytes(array))
    assert parsed.shape == array.shape
    np.testing.assert_array_equal(parsed, array)


def test_parse_idx_reads_a_written_mnist_header_byte_by_byte():
    data = b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x03" + bytes([0, 7, 255, 1, 2, 3])
    np.testing.assert_array_equal(parse_idx(data), [[[0, 7, 255]], [[1, 2, 3]]])


@pytest.mark.parametrize("data, match", [
    (b"\x00\x00", "shorter than the 4-byte magic"),
    (b"\x00\x01\x08\x01\x00\x00\x00\x00", "bad IDX magic number 0x00010801"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x00", "bad IDX magic number"),
    (gzip.compress(idx_bytes(np.zeros(3, np.uint8))), "gzip-compressed: decompress it first"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX file: 8 bytes, but its 3 dimension sizes need a 16-byte"),
    (idx_bytes(np.zeros((2, 2), np.uint8))[:-1], r"truncated IDX file: shape \(2, 2\) needs 4 data bytes, found 3"),
    (idx_bytes(np.zeros(2, np.uint8)) + b"\x00", "1 unexpected bytes after the data"),
])
def test_parse_idx_rejects_malformed_files(data, match):
    with pytest.raises(CutbenchError, match=match):
        parse_idx(data, "some.idx")


# --------------------------------------------------------------------------- MNIST-family loaders


def test_mnist_loader_reads_scales_and_describes_the_files(fake_mnist, data_home):
    (train_images, train_labels), (test_images, test_labels) = fake_mnist
    data = load_dataset("mnist")
    assert data.X.shape == (40, 784) and data.X.dtype == np.float32
    np.testing.assert_array_equal(data.X, np.concatenate([train_images, test_images]).reshape(40, -1) / np.float32(255))
    np.testing.assert_array_equal(data.y, np.concatenate([train_labels, test_labels]))
    assert data.meta["image_shape"] == (28, 28) and data.meta["class_names"] == list("0123456789")
    assert data.meta["files"][0] == str(data_home / "mnist" / "train-images-idx3-ubyte.gz")
    assert load_dataset("mnist", split="test").X.shape == (10, 784)
    np.testing.assert_array_equal(load_dataset("mnist", split="train").y, train_labels)


def test_subsampling_is_seeded_keeps_file_order_and_refuses_too_many(fake_mnist):
    whole = load_dataset("mnist")
    part = load_dataset("mnist", n=12, random_state=4)
    rows = np.sort(np.random.default_rng(4).choice(40, 12, replace=False))
    np.testing.assert_array_equal(part.X, whole.X[rows])
    assert part.meta["fingerprint"] != load_dataset("mnist", n=12, random_state=5).meta["fingerprint"]
    with pytest.raises(CutbenchError, match="n=41 is larger than the dataset, which has 40 images; use n <= 40"):
        load_dataset("mnist", n=41)
    with pytest.raises(CutbenchError, match="split='val' is not one of 'all', 'train', 'test'"):
        load_dataset("mnist", split="val")


def test_missing_file_names_it_the_paths_searched_and_how_to_get_it(data_home, monkeypatch):
    monkeypatch.setattr(_files, "download", lambda *args: pytest.fail("tests must never download"))
    with pytest.raises(CutbenchError) as error:
        load_dataset("fashion_mnist")
    message = str(error.value)
    assert "no valid copy of train-images-idx3-ubyte.gz" in message
    assert f"{data_home / 'fashion-mnist' / 'train-images-idx3-ubyte.gz'}: not found" in message
    assert "Downloads are off" in message
    assert "To get it: download http" in message and "set $CUTBENCH_DATA" in message


def test_checksum_mismatch_and_truncation_are_reported(fake_mnist, data_home):
    path = data_home / "mnist" / "t10k-labels-idx1-ubyte.gz"
    good = path.read_bytes()
    path.write_bytes(good[:-3])
    with pytest.raises(CutbenchError, match=r"t10k-labels-idx1-ubyte.gz: truncated: \d+ bytes, expected"):
        load_dataset("mnist")
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(CutbenchError, match="checksum mismatch: md5 [0-9a-f]{32}, expected"):
        load_dataset("mnist")


def test_an_invalid_copy_is_skipped_with_a_warning_when_a_good_one_exists(fake_mnist, data_home, tmp_path,
                                                                          monkeypatch):
    local_install = tmp_path / "usr-share"
    local_install.mkdir()
    for path in (data_home / "mnist").iterdir():
        (local_install / path.name).write_bytes(path.read_bytes())
    (data_home / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"junk")
    monkeypatch.setattr(_files, "KNOWN_LOCATIONS", {"mnist": (local_install,)})
    with pytest.warns(CutbenchWarning, match="skipped invalid copies of train-labels-idx1-ubyte.gz"):
        data = load_dataset("mnist")
    assert data.meta["files"][1] == str(local_install / "train-labels-idx1-ubyte.gz")


def test_a_recompressed_copy_is_accepted_by_its_content(fake_mnist, data_home):
    path = data_home / "mnist" / "train-labels-idx1-ubyte.gz"
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))  # other bytes, same content
    np.testing.assert_array_equal(load_dataset("mnist", split="train").y, fake_mnist[0][1])


def test_download_goes_through_verification_and_lands_atomically(data_home, tmp_path, monkeypatch):
    # A file:// URL exercises the download path without a network.
    train, test = digit_images(5, 3), digit_images(4, 4)
    source, files = fake_idx_source("mnist", train, test)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, content in files.items():
        (mirror / name).write_bytes(content)
    with_urls = lambda spec: FileSpec(spec.name, md5=spec.md5, sha256=spec.sha256, size=spec.size,  # noqa: E731
                                      urls=(f"file://{mirror / spec.name}",))
    source = mnist.IdxSource("mnist", tuple(map(with_urls, source.train)), tuple(map(with_urls, source.test)), 10)
    monkeypatch.setitem(mnist.SOURCES, "mnist", source)
    with pytest.raises(CutbenchError, match="Downloads are off"):
        load_dataset("mnist")
    _files.allow_downloads(True)
    try:
        assert load_dataset("mnist").X.shape == (9, 784)
    finally:
        _files.allow_downloads(None)
    assert sorted(path.name for path in (data_home / "mnist").iterdir()) == sorted(files)  # no leftover .part
    (mirror / "train-images-idx3-ubyte.gz").write_bytes(b"tampered")
    (data_home / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    _files.allow_downloads(True)
    try:
        with pytest.raises(CutbenchError, match="(?s)Download failed:.*is not the expected train-images"):
            load_dataset("mnist")
    finally:
        _files.allow_downloads(None)


@pytest.fixture
def silent_server():
    """A loopback server that accepts connections and never sends a byte; yields its port."""
    from benchmarks.measure.stalled_download import silent_server as start

    server, port = start()
    yield port
    server.close()


def test_a_server_that_never_answers_fails_fast_once_and_is_remembered(data_home, monkeypatch, silent_server,
                                                                      capsys):
    train, test = digit_images(5, 3), digit_images(4, 4)
    source, _ = fake_idx_source("mnist", train, test)
    urls = (f"http://127.0.0.1:{silent_server}/a/", f"http://127.0.0.1:{silent_server}/b/")
    with_urls = lambda spec: FileSpec(spec.name, md5=spec.md5, size=spec.size,  # noqa: E731
                                      urls=tuple(url + spec.name for url in urls))
    monkeypatch.setitem(mnist.SOURCES, "mnist", mnist.IdxSource("mnist", tuple(map(with_urls, source.train)),
                                                                tuple(map(with_urls, source.test)), 10))
    monkeypatch.setattr(_files, "DOWNLOAD_TIMEOUT", 0.5)
    monkeypatch.setattr(_files, "_download_setting", True)
    started = time.perf_counter()
    with pytest.raises(CutbenchError, match="(?s)Download failed:.*/a/train-images.*timed out.*/b/train-images"):
        load_dataset("mnist")
    assert time.perf_counter() - started < 5  # two mirrors x 0.5 s, not two x 60 s
    assert "waiting at most 0.5 s for the server" in capsys.readouterr().err  # said while it waits
    started = time.perf_counter()
    with pytest.raises(CutbenchError, match=r"\(earlier in this run\) download of http://127\.0\.0\.1"):
        load_dataset("mnist")
    assert time.perf_counter() - started < 0.5  # one attempt per file and process, not one per cell


def test_a_study_through_a_network_that_never_answers_ends_quickly(data_home, monkeypatch, silent_server):
    from cutbench.runner import run_study
    from cutbench.store import ResultStore
    from cutbench.study import expand_study

    proxy = f"http://127.0.0.1:{silent_server}"  # every download goes to the silent server, loopback only
    for variable in ("http_proxy", "https_proxy"):
        monkeypatch.setenv(variable, proxy)
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setattr(urllib.request, "_opener", None)  # urllib reads the proxies when it builds its opener
    monkeypatch.setattr(_files, "DOWNLOAD_TIMEOUT", 0.5)
    monkeypatch.setattr(_files, "_download_setting", True)
    raw = {"name": "stall", "datasets": [{"name": "mnist", "params": {"n": 100}}], "methods": ["kmeans"],
           "seeds": [0, 1, 2], "device": "cpu"}
    store = ResultStore(data_home.parent / "res")
    started = time.perf_counter()
    counts = run_study(expand_study(raw), store, progress=lambda line: None)
    assert time.perf_counter() - started < 10
    assert counts["failed"] == 3
    errors = [record["error"] for record in store.records()]
    assert all("timed out" in error for error in errors), "\n".join(errors)


def test_no_download_switch_fails_a_cell_at_once_with_how_to_get_the_file(data_home, tmp_path, monkeypatch, capsys):
    from cutbench.cli import main

    monkeypatch.setenv("CUTBENCH_DOWNLOAD", "1")
    (tmp_path / "s.yaml").write_text("name: s\ndatasets: [mnist]\nmethods: [kmeans]\ndevice: cpu\n")
    try:
        assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--no-download"]) == 1
    finally:
        _files.allow_downloads(None)
    out = capsys.readouterr().out
    assert "Downloads are off (cutbench run --no-download" in out and "To get it: download" in out


def test_download_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setattr(_files, "_download_setting", None)
    for value, allowed in (("", True), ("1", True), ("yes", True), ("0", False), ("off", False)):
        monkeypatch.setenv("CUTBENCH_DOWNLOAD", value)
        assert _files.downloads_allowed() is allowed
    monkeypatch.setenv("CUTBENCH_DOWNLOAD", "maybe")
    with pytest.raises(CutbenchError, match="CUTBENCH_DOWNLOAD='maybe' is not understood"):
        _files.downloads_allowed()


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CUTBENCH_DATA", str(tmp_path))
    assert _files.data_dir() == tmp_path
    monkeypatch.delenv("CUTBENCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert _files.data_dir() == tmp_path / "cache" / "cutbench"


def byclass_source(data_home, monkeypatch, as_zip):
    """A synthetic EMNIST ByClass (labels 0..61) whose images encode their index and are stored transposed."""
    rng = np.random.default_rng(7)
    parts = []
    for n in (124, 62):
        labels = np.concatenate([np.arange(62), rng.integers(0, 62, n - 62)]).astype(np.uint8)
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 1] = 255  # top row, second column upright; stored transposed it sits at (1, 0)
        images[:, 1, 0] = 0
        parts.append((images.transpose(0, 2, 1).copy(), labels))
    source, files = fake_idx_source("emnist", *parts, n_labels=62)
    (data_home / "emnist").mkdir()
    if as_zip:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, content in files.items():
                archive.writestr(f"gzip/{name}", content)
        archive_spec = spec_for("gzip.zip", buffer.getvalue())
        (data_home / "emnist" / "gzip.zip").write_bytes(buffer.getvalue())
        in_zip = lambda spec: FileSpec(spec.name, md5=spec.md5, archive=archive_spec, member=f"gzip/{spec.name}")  # noqa: E731
        source = mnist.IdxSource("emnist", tuple(map(in_zip, source.train)), tuple(map(in_zip, source.test)), 62)
    else:
        for name, content in files.items():
            (data_home / "emnist" / name).write_bytes(content)
    monkeypatch.setitem(mnist.SOURCES, "emnist_byclass", source)
    return parts


@pytest.mark.parametrize("as_zip", [False, True], ids=["loose files", "gzip.zip"])
def test_emnist_lowercase_keeps_classes_36_to_61_relabelled_and_upright(data_home, monkeypatch, as_zip):
    parts = byclass_source(data_home, monkeypatch, as_zip)
    stored = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    keep = labels >= 36
    data = load_dataset("emnist_lowercase")
    assert data.meta["k"] == 26 and data.meta["class_names"] == list("abcdefghijklmnopqrstuvwxyz")
    assert data.X.shape == (keep.sum(), 784)
    np.testing.assert_array_equal(data.y, labels[keep] - 36)
    np.testing.assert_array_equal(data.meta["class_counts"], np.bincount(labels[keep] - 36, minlength=26))
    upright = stored[keep].transpose(0, 2, 1).reshape(-1, 784) / np.float32(255)
    np.testing.assert_array_equal(data.X, upright)
    images = data.X.reshape(-1, 28, 28)
    assert (images[:, 0, 1] == 1).all() and (images[:, 1, 0] == 0).all()


# --------------------------------------------------------------------------- CIFAR-10


def cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    return pickle.dumps({b"batch_label": b"fake", b"labels": labels, b"data": data, b"filenames": [b"x"] * n},
                        protocol=2), data, labels


def test_cifar10_reads_python_batches_from_the_archive(data_home, monkeypatch):
    batches = {name: cifar_batch(4, seed) for seed, name in enumerate(
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"])}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, (content, _, _) in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    archive_spec = spec_for("cifar-10-python.tar.gz", buffer.getvalue())
    (data_home / "cifar10").mkdir()
    (data_home / "cifar10" / archive_spec.name).write_bytes(buffer.getvalue())
    spec = lambda name: FileSpec(f"cifar-10-batches-py/{name}", md5=hashlib.md5(batches[name][0]).hexdigest(),  # noqa: E731
                                 archive=archive_spec, member=f"cifar-10-batches-py/{name}")
    monkeypatch.setattr(cifar, "TRAIN_BATCHES", tuple(spec(f"data_batch_{i}") for i in range(1, 6)))
    monkeypatch.setattr(cifar, "TEST_BATCHES", (spec("test_batch"),))
    data = load_dataset("cifar10")
    assert data.X.shape == (24, 3072) and data.meta["image_shape"] == (32, 32, 3)
    first = batches["data_batch_1"][1][0]
    red, green, blue = first[:1024], first[1024:2048], first[2048:]
    np.testing.assert_array_equal(data.X[0].reshape(32, 32, 3)[5, 7], np.array([red, green, blue])[:, 5 * 32 + 7] / np.float32(255))
    np.testing.assert_array_equal(data.y, np.concatenate([batches[name][2] for name in batches]))
    assert load_dataset("cifar10", split="test").X.shape == (4, 3072)


def test_cifar_batch_reader_refuses_foreign_pickles():
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    with pytest.raises(CutbenchError, match="not a CIFAR-10 python batch"):
        cifar.read_cifar_batch(pickle.dumps(Payload()), "evil")
    with pytest.raises(CutbenchError, match="needs 'data' and 'labels'"):
        cifar.read_cifar_batch(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}), "partial")


# --------------------------------------------------------------------------- features files


@pytest.fixture
def features(tmp_path):
    rng = np.random.default_rng(0)
    return rng.normal(size=(20, 5)).astype(np.float32), rng.integers(0, 3, 20)


@pytest.mark.parametrize("layout", ["npz X/y", "npz features/labels", "npy + labels", "parquet columns",
                                    "parquet vectors"])
def test_features_file_round_trip(tmp_path, features, layout):
    X, y = features
    params = {}
    if layout == "npz X/y":
        np.savez(tmp_path / "f.npz", X=X, y=y)
        params["path"] = str(tmp_path / "f.npz")
    elif layout == "npz features/labels":
        np.savez(tmp_path / "f.npz", features=X, labels=y)
        params["path"] = str(tmp_path / "f.npz")
    elif layout == "npy + labels":
        np.save(tmp_path / "f.npy", X)
        np.save(tmp_path / "l.npy", y)
        params.update(path=str(tmp_path / "f.npy"), labels_path=str(tmp_path / "l.npy"))
    elif layout == "parquet columns":
        pd.DataFrame({**{f"f{i}": X[:, i] for i in range(5)}, "label": y}).to_parquet(tmp_path / "f.parquet")
        params["path"] = str(tmp_path / "f.parquet")
    else:
        pd.DataFrame({"embedding": list(X), "label": y}).to_parquet(tmp_path / "f.parquet")
        params["path"] = str(tmp_path / "f.parquet")
    data = load_dataset("features_file", **params)
    np.testing.assert_array_equal(data.X, X)
    np.testing.assert_array_equal(data.y, y)
    assert "class_names" not in data.meta
    part = load_dataset("features_file", n=7, random_state=1, **params)
    np.testing.assert_array_equal(part.X, X[np.sort(np.random.default_rng(1).choice(20, 7, replace=False))])


def test_features_file_string_labels_become_classes_with_names(tmp_path, features):
    X, _ = features
    names = np.array(["cat", "dog", "ant", "dog"] * 5)
    pd.DataFrame({"embedding": list(X), "label": names}).to_parquet(tmp_path / "f.parquet")
    data = load_dataset("features_file", path=str(tmp_path / "f.parquet"))
    assert data.meta["class_names"] == ["ant", "cat", "dog"]
    np.testing.assert_array_equal(np.array(data.meta["class_names"])[data.y], names)


def bad_file(tmp_path, features, case):
    X, y = features
    path = tmp_path / "f.npz"
    if case == "no labels npz":
        np.savez(path, X=X)
    elif case == "no labels npy":
        path = tmp_path / "f.npy"
        np.save(path, X)
    elif case == "no label column":
        path = tmp_path / "f.parquet"
        pd.DataFrame({"a": X[:, 0]}).to_parquet(path)
    elif case == "mismatched lengths":
        np.savez(path, X=X, y=y[:-1])
    elif case == "nan":
        X = X.copy()
        X[3, 2] = np.nan
        np.savez(path, X=X, y=y)
    elif case == "inf":
        X = X.copy()
        X[0, 4] = -np.inf
        np.savez(path, X=X, y=y)
    elif case == "1-d features":
        np.savez(path, X=X[:, 0], y=y)
    elif case == "float labels":
        np.savez(path, X=X, y=y + 0.5)
    elif case == "object array":
        np.save(tmp_path / "f.npy", np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
        np.save(tmp_path / "l.npy", y)
        return {"path": str(tmp_path / "f.npy"), "labels_path": str(tmp_path / "l.npy")}
    elif case == "wrong suffix":
        path = tmp_path / "f.csv"
        path.write_text("1,2\n")
    elif case == "missing":
        path = tmp_path / "absent.npz"
    return {"path": str(path)}


@pytest.mark.parametrize("case, match", [
    ("no labels npz", r"labels missing: .* holds \['X'\], with features under 'X' but no 'y'"),
    ("no labels npy", "labels missing: .* holds features only; pass labels_path="),
    ("no label column", "labels missing: .* has no 'label' column"),
    ("mismatched lengths", "20 feature rows but 19 labels"),
    ("nan", "contain NaN or inf .* in 1 row\\(s\\), the first at row 3, column 2"),
    ("inf", "contain NaN or inf .* the first at row 0, column 4"),
    ("1-d features", r"must be 2-D \(n_samples, n_features\); got shape \(20,\)"),
    ("float labels", "non-integer floats"),
    ("object array", "object arrays are refused"),
    ("wrong suffix", "has suffix '.csv'; accepted: .npy, .npz, .parquet, .pq"),
    ("missing", "features file .*absent.npz not found"),
])
def test_features_file_bad_input_is_explained(tmp_path, features, case, match):
    params = bad_file(tmp_path, features, case)
    with pytest.raises(CutbenchError, match=match):
        load_dataset("features_file", **params)


def test_features_file_n_larger_than_the_file_and_unknown_datasets(tmp_path, features):
    np.savez(tmp_path / "f.npz", X=features[0], y=features[1])
    with pytest.raises(CutbenchError, match="n=21 is larger than the dataset, which has 20 rows"):
        load_dataset("features_file", path=str(tmp_path / "f.npz"), n=21)
    with pytest.raises(CutbenchError, match="unknown dataset 'imagenet_clip'; available: .*features_file"):
        load_dataset("imagenet_clip")


# --------------------------------------------------------------------------- MNIST8M-like


def test_mnist8m_like_shapes_labels_range_and_determinism(fake_mnist, monkeypatch):
    (train_images, train_labels), _ = fake_mnist
    data = load_dataset("mnist8m_like", n=75, random_state=3)
    assert data.X.shape == (75, 784) and data.X.min() >= 0 and data.X.max() <= 1
    np.testing.assert_array_equal(data.y, train_labels[np.arange(75) % 30])
    assert data.meta["class_counts"] == np.bincount(train_labels[np.arange(75) % 30], minlength=10).tolist()
    again = load_dataset("mnist8m_like", n=75, random_state=3)
    np.testing.assert_array_equal(data.X, again.X)
    assert not np.array_equal(data.X, load_dataset("mnist8m_like", n=75, random_state=4).X)
    # Deformed, not copied: every sample differs from its source digit.
    assert (np.abs(data.X - train_images[np.arange(75) % 30].reshape(75, -1) / 255).max(axis=1) > 0.1).all()


def test_mnist8m_like_does_not_depend_on_chunking_and_is_balanced_like_its_source(fake_mnist, monkeypatch):
    whole = load_dataset("mnist8m_like", n=64)
    monkeypatch.setattr(mnist8m, "CHUNK_SIZE", 7)
    chunked = load_dataset("mnist8m_like", n=64)
    np.testing.assert_array_equal(whole.X, chunked.X)
    prefix = load_dataset("mnist8m_like", n=20)
    np.testing.assert_array_equal(prefix.X, whole.X[:20])  # sample i depends on the seed and i only


def test_mnist8m_like_without_deformation_is_the_source(fake_mnist):
    (train_images, _), _ = fake_mnist
    data = load_dataset("mnist8m_like", n=30, alpha=0.0, max_shift=0.0)
    np.testing.assert_allclose(data.X, train_images.reshape(30, -1) / 255, atol=1e-5)  # grid_sample rounding


@pytest.mark.parametrize("params, match", [
    ({"n": 8_100_001}, "n=8100001 is out of range; MNIST8M has 8,100,000 images"),
    ({"n": 0}, "n=0 is out of range"),
    ({"sigma": 0.0}, "sigma=0.0 must be > 0"),
    ({"alpha": -1.0}, "alpha=-1.0 must be >= 0"),
])
def test_mnist8m_like_bad_parameters(params, match):
    with pytest.raises(CutbenchError, match=match):
        load_dataset("mnist8m_like", **params)


# --------------------------------------------------------------------------- real data (../shared/data)


def real_data_home() -> Path:
    configured = os.environ.get("CUTBENCH_DATA")
    home = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (home / "mnist").is_dir():
        pytest.skip(f"real data not found under {home}; set CUTBENCH_DATA to a folder with mnist/ and fashion-mnist/")
    return home


@pytest.mark.data
def test_real_fashion_mnist_has_70000_images_7000_per_class(monkeypatch):
    monkeypatch.setenv("CUTBENCH_DATA", str(real_data_home()))
    data = load_dataset("fashion_mnist")
    assert data.X.shape == (70000, 784) and data.meta["class_counts"] == [7000] * 10
    assert data.X.min() == 0.0 and data.X.max() == 1.0


@pytest.mark.data
def test_real_mnist_has_70000_images_with_the_published_class_counts(monkeypatch):
    monkeypatch.setenv("CUTBENCH_DATA", str(real_data_home()))
    data = load_dataset("mnist")
    train = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert data.X.shape == (70000, 784)
    assert data.meta["class_counts"] == [a + b for a, b in zip(train, test)]
    assert load_dataset("mnist", split="test").meta["class_counts"] == test
