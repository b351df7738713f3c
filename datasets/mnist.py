"""The MNIST family from its original gzip IDX files: MNIST, Fashion-MNIST, EMNIST lowercase letters.

X holds the 28x28 images flattened row by row, as float32 ``pixel / 255`` in [0, 1] (what
torchvision's ``ToTensor`` gives); ``meta["image_shape"]`` is ``(28, 28)``. ``split="all"`` (the
default, the clustering papers' protocol) is the training set followed by the test set; ``"train"``
and ``"test"`` load one of them. ``n`` draws that many images uniformly without replacement
(seeded by ``random_state``, file order kept); ``n=None`` keeps them all.

Files are looked for under ``data_dir()/<folder>/`` (folders ``mnist``, ``fashion-mnist``,
``emnist``), then in known local installs, then downloaded when allowed; see
:mod:`cutbench.datasets._files`. Every file is checked against its published checksum.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from cutbench import CutbenchError
from cutbench.datasets._files import FileSpec, fetch_files, parse_idx, subsample_indices
from cutbench.datasets.base import register_dataset

SPLITS = ("all", "train", "test")


@dataclass(frozen=True)
class IdxSource:
    """Where a dataset's four IDX files live and what they hold.

    ``train`` and ``test`` are ``(images, labels)`` file pairs; ``n_labels`` bounds the label values.
    """

    folder: str
    train: tuple[FileSpec, FileSpec]
    test: tuple[FileSpec, FileSpec]
    n_labels: int


def _idx_pair(prefix: str, urls: tuple[str, ...], images: dict, labels: dict) -> tuple[FileSpec, FileSpec]:
    def spec(kind: str, checks: dict) -> FileSpec:
        name = f"{prefix}-{kind}.gz"
        return FileSpec(name, urls=tuple(url + name for url in urls), **checks)

    return spec("images-idx3-ubyte", images), spec("labels-idx1-ubyte", labels)


_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_EMNIST_ARCHIVE = FileSpec("gzip.zip", md5="58c8d27c78d21e728a6bc7b3cc06412e",
                           urls=("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",))


def _emnist_spec(name: str, size: int, sha256: str) -> FileSpec:
    return FileSpec(name, sha256=sha256, size=size, archive=_EMNIST_ARCHIVE, member=f"gzip/{name}")


SOURCES: dict[str, IdxSource] = {
    "mnist": IdxSource(
        folder="mnist",
        train=_idx_pair("train", _MNIST_URLS,
                        dict(size=9912422, md5="f68b3c2dcbeaaa9fbdd348bbdeb94873", raw_md5="6bbc9ace898e44ae57da46a324031adb",
                             sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
                        dict(size=28881, md5="d53e105ee54ea40749a09fcbcd1e9432", raw_md5="a25bea736e30d166cdddb491f175f624",
                             sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c")),
        test=_idx_pair("t10k", _MNIST_URLS,
                       dict(size=1648877, md5="9fb629c4189551a2d022fa330f9573f3", raw_md5="2646ac647ad5339dbf082846283269ea",
                            sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
                       dict(size=4542, md5="ec29112dd5afa0611ce80d1b7f02629c", raw_md5="27ae3e4e09519cfbb04c329615203637",
                            sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")),
        n_labels=10,
    ),
    "fashion_mnist": IdxSource(
        folder="fashion-mnist",
        train=_idx_pair("train", _FASHION_URLS,
                        dict(size=26421880, md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d", raw_md5="f4a8712d7a061bf5bd6d2ca38dc4d50a",
                             sha256="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
                        dict(size=29515, md5="25c81989df183df01b3e8a0aad5dffbe", raw_md5="9018921c3c673c538a1fc5bad174d6f9",
                             sha256="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845")),
        test=_idx_pair("t10k", _FASHION_URLS,
                       dict(size=4422102, md5="bef4ecab320f06d8554ea6380940ec79", raw_md5="8181f5470baa50b63fa0f6fddb340f0a",
                            sha256="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
                       dict(size=5148, md5="bb300cfdad3c16e7a12a480ee83cd310", raw_md5="15d484375f8d13e6eb1aabb0c3f46965",
                            sha256="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5")),
        n_labels=10,
    ),
    # Only sha256 and size are known for the loose EMNIST files (as recorded by a public mirror);
    # the md5 of the whole gzip.zip is the published one.
    "emnist_byclass": IdxSource(
        folder="emnist",
        train=(_emnist_spec("emnist-byclass-train-images-idx3-ubyte.gz", 173367313,
                            "9e21987f03a6eb8b870187e785883ddad96947299587908f1a7ec2ca0f4be5f0"),
               _emnist_spec("emnist-byclass-train-labels-idx1-ubyte.gz", 491603,
                            "f7ef403d48dc18a89dae0d83d11ee69cecb6e1c12c3a961d03712e495c02a8fa")),
        test=(_emnist_spec("emnist-byclass-test-images-idx3-ubyte.gz", 28908322,
                           "5ec835bd5d5b1a66378a132e727fef20fe994b3cc666899befcca5ac766f50cd"),
              _emnist_spec("emnist-byclass-test-labels-idx1-ubyte.gz", 81839,
                           "501e305eeeacb093b162592d80e8a2632040872360fa6d85cfcb2200d91ca92a")),
        n_labels=62,
    ),
}
"""Dataset -> its IDX files (checksums as published upstream; see ../shared/data/README.md)."""

MNIST_CLASSES = tuple(string.digits)
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
EMNIST_LOWERCASE_CLASSES = tuple(string.ascii_lowercase)
EMNIST_FIRST_LOWERCASE = 36
"""ByClass labels: 0-9 digits, 10-35 'A'-'Z', 36-61 'a'-'z'."""


def load_idx_split(dataset: str, source: IdxSource, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, h, w) uint8, labels (N,) uint8 and the files read, for ``split`` of ``source``.

    ``"all"`` is the training images followed by the test images.
    """
    if split not in SPLITS:
        raise CutbenchError(f"dataset {dataset!r}: split={split!r} is not one of {', '.join(map(repr, SPLITS))} "
                            "('all' = train + test).")
    pairs = {"all": [source.train, source.test], "train": [source.train], "test": [source.test]}[split]
    files = fetch_files(dataset, source.folder, [spec for pair in pairs for spec in pair])
    images, labels = [], []
    for (image_spec, label_spec), image_file, label_file in zip(pairs, files[0::2], files[1::2]):
        part_images = parse_idx(image_file.content, image_file.source)
        part_labels = parse_idx(label_file.content, label_file.source)
        if part_images.ndim != 3 or part_images.dtype != np.uint8:
            raise CutbenchError(f"{image_file.source}: expected uint8 images of shape (N, h, w); got "
                                f"{part_images.dtype} of shape {part_images.shape}.")
        if part_labels.shape != part_images.shape[:1] or part_labels.dtype != np.uint8:
            raise CutbenchError(f"{label_file.source}: expected {len(part_images):,} uint8 labels for "
                                f"{image_spec.name}; got {part_labels.dtype} of shape {part_labels.shape}.")
        if len(part_labels) and part_labels.max() >= source.n_labels:
            raise CutbenchError(f"{label_file.source}: label {part_labels.max()} out of range; "
                                f"{dataset} labels lie in 0..{source.n_labels - 1}.")
        images.append(part_images)
        labels.append(part_labels)
    return np.concatenate(images), np.concatenate(labels), [file.source for file in files]


def image_dataset(dataset: str, images: np.ndarray, labels: np.ndarray, n, random_state: int,
                  class_names, files: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(X, y, extra_meta)`` from uint8 images (N, h, w[, c]): subsampled, flattened, scaled to [0, 1]."""
    rows = subsample_indices(dataset, len(images), n, random_state, unit="images")
    if rows is not None:
        images, labels = images[rows], labels[rows]
    X = np.divide(images.reshape(len(images), -1), np.float32(255), dtype=np.float32)
    extra_meta = {"image_shape": tuple(int(size) for size in images.shape[1:]), "class_names": list(class_names),
                  "files": files}
    return X, labels.astype(np.int64), extra_meta


@register_dataset("mnist")
def mnist(split="all", n=None, random_state=0):
    """MNIST handwritten digits: 60,000 training + 10,000 test images, 28x28, 10 classes.

    Files (folder ``mnist``): ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``.
    """
    images, labels, files = load_idx_split("mnist", SOURCES["mnist"], split)
    return image_dataset("mnist", images, labels, n, random_state, MNIST_CLASSES, files)


@register_dataset("fashion_mnist")
def fashion_mnist(split="all", n=None, random_state=0):
    """Fashion-MNIST (Zalando): 60,000 + 10,000 28x28 greyscale images of 10 balanced clothing classes.

    Files (folder ``fashion-mnist``, also found in Debian's ``/usr/share/datasets/fashion-mnist/``):
    the same four names as MNIST's.
    """
    images, labels, files = load_idx_split("fashion_mnist", SOURCES["fashion_mnist"], split)
    return image_dataset("fashion_mnist", images, labels, n, random_state, FASHION_MNIST_CLASSES, files)


@register_dataset("emnist_lowercase")
def emnist_lowercase(split="all", n=None, random_state=0):
    """EMNIST ByClass restricted to the 26 lowercase letters, as in the NeuNcut and SENet papers.

    ByClass labels 36-61 ('a'-'z') are kept and relabelled 0-25; 163,939 training + 27,059 test
    = 190,998 images with heavily imbalanced classes. EMNIST stores each image transposed; it is
    transposed back, so images read upright like MNIST's.

    Files (folder ``emnist``): ``emnist-byclass-{train,test}-{images-idx3,labels-idx1}-ubyte.gz``,
    or NIST's ``gzip.zip`` that holds them (under ``gzip/``).
    """
    images, labels, files = load_idx_split("emnist_lowercase", SOURCES["emnist_byclass"], split)
    lowercase = np.flatnonzero(labels >= EMNIST_FIRST_LOWERCASE)
    images = images[lowercase].transpose(0, 2, 1)
    labels = labels[lowercase] - EMNIST_FIRST_LOWERCASE
    return image_dataset("emnist_lowercase", images, labels, n, random_state, EMNIST_LOWERCASE_CLASSES, files)
