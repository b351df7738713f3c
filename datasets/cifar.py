"""CIFAR-10 from the official python batches (Krizhevsky, 2009).

Files (folder ``cifar10`` under ``data_dir()``): ``cifar-10-batches-py/data_batch_1`` ..
``data_batch_5`` and ``cifar-10-batches-py/test_batch``, or the archive ``cifar-10-python.tar.gz``
that holds them (read without unpacking); each batch is checked against its published md5.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from cutbench import CutbenchError
from cutbench.datasets._files import FileSpec, fetch_files
from cutbench.datasets.base import register_dataset
from cutbench.datasets.mnist import SPLITS, image_dataset

FOLDER = "cifar10"
BATCH_DIR = "cifar-10-batches-py"
ARCHIVE = FileSpec("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a", size=170498071,
                   urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",))


def _batch(name: str, md5: str) -> FileSpec:
    path = f"{BATCH_DIR}/{name}"
    return FileSpec(path, md5=md5, archive=ARCHIVE, member=path)


TRAIN_BATCHES = (
    _batch("data_batch_1", "c99cafc152244af753f735de768cd75f"),
    _batch("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
    _batch("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
    _batch("data_batch_4", "634d18415352ddfa80567beed471001a"),
    _batch("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
)
TEST_BATCHES = (_batch("test_batch", "40351d587109b95175f43aff81a1287e"),)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SIZE, CHANNELS = 32, 3

# A batch pickles a dict of lists, bytes and one numpy array; nothing else may be constructed.
# (numpy.core is numpy 1's name of numpy._core; _codecs.encode is how Python 3 pickles bytes
# with protocol 2; _frombuffer is how numpy pickles arrays with protocol 5.)
_ALLOWED_GLOBALS = {
    *((f"{package}.multiarray", name) for package in ("numpy.core", "numpy._core") for name in ("_reconstruct", "scalar")),
    *((f"{package}.numeric", "_frombuffer") for package in ("numpy.core", "numpy._core")),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not part of a CIFAR batch")
        return super().find_class(module, name)


def read_cifar_batch(content: bytes, name: str = "CIFAR batch") -> tuple[np.ndarray, np.ndarray]:
    """Images (m, 32, 32, 3) uint8 (height, width, RGB) and labels (m,) of one python batch.

    A batch is a pickled dict (written by Python 2, so its keys are bytes) whose ``data`` is an
    (m, 3072) uint8 array holding each image's red, green and blue planes in turn, row-major,
    and whose ``labels`` lists m class ids 0-9.

    Raises
    ------
    CutbenchError
        The content is not a pickled batch, or its arrays have the wrong shape, type or values.
    """
    try:
        batch = _BatchUnpickler(io.BytesIO(content), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as error:
        raise CutbenchError(f"{name}: not a CIFAR-10 python batch ({error}).") from error
    if not isinstance(batch, dict):
        raise CutbenchError(f"{name}: not a CIFAR-10 python batch (it holds a {type(batch).__name__}, not a dict).")
    entries = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    if "data" not in entries or "labels" not in entries:
        raise CutbenchError(f"{name}: a CIFAR-10 batch needs 'data' and 'labels'; found keys {sorted(entries)}.")
    data, labels = np.asarray(entries["data"]), np.asarray(entries["labels"])
    pixels = CHANNELS * IMAGE_SIZE * IMAGE_SIZE
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        raise CutbenchError(f"{name}: 'data' must be uint8 of shape (m, {pixels}); got {data.dtype} {data.shape}.")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise CutbenchError(f"{name}: 'labels' must hold {len(data):,} integer labels; got {labels.dtype} {labels.shape}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise CutbenchError(f"{name}: labels must lie in 0..{len(CIFAR10_CLASSES) - 1}; "
                            f"found {labels.min()}..{labels.max()}.")
    images = data.reshape(len(data), CHANNELS, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return images, labels


@register_dataset("cifar10")
def cifar10(split="all", n=None, random_state=0):
    """CIFAR-10: 50,000 training + 10,000 test 32x32 RGB images, 10 balanced classes.

    X is (n, 3072) float32 in [0, 1]: each image flattened in (height, width, channel) order,
    so ``X[i].reshape(meta["image_shape"])`` with image_shape (32, 32, 3) is the RGB image.
    ``split``, ``n`` and ``random_state`` work as for MNIST ("all" = the five training batches,
    then the test batch).
    """
    if split not in SPLITS:
        raise CutbenchError(f"dataset 'cifar10': split={split!r} is not one of {', '.join(map(repr, SPLITS))} "
                            "('all' = train + test).")
    specs = {"all": TRAIN_BATCHES + TEST_BATCHES, "train": TRAIN_BATCHES, "test": TEST_BATCHES}[split]
    files = fetch_files("cifar10", FOLDER, specs)
    batches = [read_cifar_batch(file.content, file.source) for file in files]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return image_dataset("cifar10", images, labels, n, random_state, CIFAR10_CLASSES, [file.source for file in files])
