"""Feature step ``"scatnet"``: the scattering-transform features of SENet and NeuNcut (research notes §1.1).

For each greyscale image, exactly as the reference ``feature_generation.py`` does it:

1. Bilinear resize to 32x32 (torchvision's ``Resize((32, 32))`` on a PIL image, not zero padding).
   PIL works on 8-bit images: it resizes the width, rounds to 8 bits, then the height and rounds
   again; :func:`resize_like_pil` does the same and gives PIL's pixels exactly.
2. kymatio ``Scattering2D(J=3, L=8, max_order=2)`` on the 32x32 image: 1 + L J + L² J (J - 1) / 2
   = 217 channels of 4x4 coefficients.
3. Each channel divided by its largest absolute value, per image (no epsilon in the reference; a
   channel that is all zero, which only a blank image gives, is left at zero instead of NaN).
4. Flattened to 217 x 16 = 3,472 dimensions, channel by channel.

The PCA that follows in the papers is a separate step (``pca`` with ``center=False``; the
``"scatnet"`` preset of :data:`cutbench.datasets.features.PRESETS` chains them).

Images go through in batches of :data:`BATCH_SIZE` on the pipeline's device (CUDA when available;
on the CPU one process per core, each with one torch thread, see :func:`cpu_workers`),
with progress reported through :func:`cutbench.datasets.features.feature_progress`. kymatio is an optional
dependency (``pip install 'cutbench[scatnet]'``).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from cutbench import CutbenchError
from cutbench.datasets.features import feature_progress, register_step

J, L = 3, 8
"""Scattering scales and orientations of the reference recipe."""

IMAGE_SIZE = 32
"""Images are resized to IMAGE_SIZE x IMAGE_SIZE before the transform."""

N_CHANNELS = 1 + L * J + L * L * J * (J - 1) // 2
"""217 scattering channels (orders 0, 1 and 2)."""

N_FEATURES = N_CHANNELS * (IMAGE_SIZE >> J) ** 2
"""3,472 features per image."""

BATCH_SIZE = 1024
"""Images per batch: large enough to amortise kymatio's per-call work, small enough (about 60 MB of
intermediate tensors per 1,024 images) for any device. The output does not depend on it."""

MIN_BATCHES_PER_WORKER = 4
"""A CPU worker process is started only for at least this many batches (see :func:`cpu_workers`)."""

_scattering_modules: dict = {}


def _scattering(device: torch.device):
    """kymatio's torch Scattering2D for 32x32 images on ``device``, built once per device."""
    if device not in _scattering_modules:
        try:
            # Imported from its module, not from ``kymatio.torch``: that package also imports the
            # numpy frontends, which fail with SciPy >= 1.17 in kymatio 0.3.0.
            from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D
        except ImportError as error:
            raise CutbenchError("feature step 'scatnet' needs kymatio 0.3: pip install 'cutbench[scatnet]' "
                                f"(or pip install kymatio==0.3.0); importing it failed: {error}") from error
        _scattering_modules[device] = ScatteringTorch2D(J=J, shape=(IMAGE_SIZE, IMAGE_SIZE), L=L).to(device)
    return _scattering_modules[device]


def resize_like_pil(images: torch.Tensor) -> torch.Tensor:
    """(m, h, w) images in [0, 1] resized to 32x32 exactly as PIL's bilinear ``resize`` of 8-bit images.

    PIL resizes the width first, then the height, rounding to 8 bits (half up) after each pass;
    for upsampling each pass is the half-pixel-centred linear interpolation of
    ``F.interpolate(..., align_corners=False)`` (a pass leaving a size unchanged is the identity).
    """
    levels = images[:, None] * 255.0
    wide = torch.floor(F.interpolate(levels, size=(images.shape[1], IMAGE_SIZE), mode="bilinear",
                                     align_corners=False) + 0.5)
    resized = torch.floor(F.interpolate(wide, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                                        align_corners=False) + 0.5)
    return resized[:, 0] / 255.0


def scattering_features(images: torch.Tensor) -> torch.Tensor:
    """Steps 1-4 of the module docstring for (m, h, w) float32 images in [0, 1]: an (m, 3472) tensor."""
    coefficients = _scattering(images.device)(resize_like_pil(images).contiguous())
    coefficients = coefficients.reshape(len(images), N_CHANNELS, -1)
    peak = coefficients.abs().amax(dim=2, keepdim=True)
    normalised = coefficients / torch.where(peak > 0, peak, torch.ones_like(peak))
    return normalised.reshape(len(images), N_FEATURES)


def _scatter_on_one_thread(images: np.ndarray) -> np.ndarray:
    """(m, h, w) float32 images -> (m, 3472) features, on the CPU with one torch thread.

    kymatio issues hundreds of small FFTs and products per batch; splitting each over threads
    gains little, and when the cores are shared the threads wait on each other: on the 2-core
    test machine under load, 2 threads took 13x longer than 1 (see the issue 3 report). CPU
    cores are used by worker processes instead (:func:`cpu_workers`).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return scattering_features(torch.from_numpy(images)).numpy()
    finally:
        torch.set_num_threads(threads)


def cpu_workers(n_batches: int) -> int:
    """Processes for ``n_batches`` CPU batches: one per core, none extra for a few batches.

    Starting a worker and shipping batches to it has a cost, so each gets at least
    MIN_BATCHES_PER_WORKER batches. A daemonic process (e.g. a multiprocessing.Pool worker) may
    not start children, and platforms without ``fork`` (Windows) get no workers: both compute
    in-process.
    """
    # fork, because spawn and forkserver re-run the caller's main script in every child, which
    # breaks any script that computes features outside an ``if __name__ == "__main__"`` guard. A
    # forked child runs single-threaded torch CPU code only, for which fork is safe.
    if multiprocessing.current_process().daemon or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(os.cpu_count() or 1, n_batches // MIN_BATCHES_PER_WORKER))


@register_step("scatnet")
def scatnet(X, meta, *, device):
    """Scattering features (3,472 per image) of a greyscale image dataset; see the module docstring.

    Needs ``meta["image_shape"] == (h, w)`` and X holding the images as loaded (one value per
    pixel), so it must be the first step of a pipeline. On the CPU, batches are spread over
    :func:`cpu_workers` processes; every batch is computed alike wherever it runs, so the output
    does not depend on the number of workers.
    """
    shape = tuple(meta.get("image_shape") or ())
    if len(shape) != 2:
        found = f"image_shape {shape}" if shape else "no image_shape in its meta"
        raise CutbenchError(f"feature step 'scatnet' needs greyscale images (meta['image_shape'] = (h, w)); dataset "
                            f"{meta.get('name')!r} has {found}. Use it on mnist, fashion_mnist or emnist_lowercase.")
    if X.shape[1] != shape[0] * shape[1]:
        raise CutbenchError(f"feature step 'scatnet' needs the {shape[0]}x{shape[1]} pixels of each image, but the "
                            f"features have {X.shape[1]} columns; put 'scatnet' first in the pipeline.")
    starts = range(0, len(X), BATCH_SIZE)
    batches = (np.ascontiguousarray(X[start:start + BATCH_SIZE], dtype=np.float32).reshape(-1, *shape)
               for start in starts)
    out = np.empty((len(X), N_FEATURES), dtype=np.float32)
    workers = cpu_workers(len(starts)) if device.type == "cpu" else 1
    progress = feature_progress(f"scatnet on {device}" + (f" ({workers} processes)" if workers > 1 else ""), len(X))
    if device.type != "cpu":
        with torch.no_grad():
            results = (scattering_features(torch.from_numpy(images).to(device)).cpu().numpy() for images in batches)
            _collect(results, starts, out, progress)
    elif workers == 1:
        _collect(map(_scatter_on_one_thread, batches), starts, out, progress)
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            _collect(pool.map(_scatter_on_one_thread, batches), starts, out, progress)
    progress.close()
    return out


def _collect(results, starts, out: np.ndarray, progress) -> None:
    for start, features in zip(starts, results):
        out[start:start + len(features)] = features
        progress.update(len(features))
