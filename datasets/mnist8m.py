"""MNIST8M-like data: seeded elastic deformations and translations of the MNIST training digits.

MNIST8M (Loosli, Canu and Bottou's "infinite MNIST") is 8.1 million images made from the 60,000
MNIST training digits by pseudo-random deformations and translations. It is not shipped here, so
``mnist8m_like`` makes a set of the same kind and size on the fly:

* Sample ``i`` is a deformed copy of training digit ``i % 60000`` and carries its label, so any
  ``n`` up to 8.1 million = 135 x 60,000 can be asked for. Every sample is deformed; MNIST8M also
  holds the undeformed originals, and its deformations (infimnist's own) are not these.
* The deformation is Simard et al.'s elastic distortion (ICDAR 2003): two fields of U[-1, 1)
  noise, one per axis, each smoothed by a Gaussian of standard deviation ``sigma`` pixels
  (zero padding at the border, kernel truncated at 4 sigma as in ``scipy.ndimage.gaussian_filter``)
  and scaled by ``alpha``, plus one uniform translation in [-max_shift, max_shift) pixels per axis.
  Output pixel (r, c) is the source sampled bilinearly at (r + dy(r, c) + ty, c + dx(r, c) + tx),
  zero outside the image, then clipped to [0, 1] (bilinear weights sum to one, so the clip only
  removes float rounding). The defaults alpha = 34, sigma = 4 are Simard et al.'s MNIST values.
* Randomness: sample ``i`` takes its 2 * 28 * 28 + 2 uniforms from a counter-based Philox stream
  at position ``i`` (keyed by ``random_state``), so a sample depends on the seed and its index only,
  never on the chunking. The uniforms are always drawn on the CPU with numpy; smoothing (two small
  matrix products) and warping (``torch.nn.functional.grid_sample``) run on ``device``. CUDA output
  therefore uses the same random numbers as the CPU and differs from it only by float32 rounding
  in the smoothing and the interpolation; it is not bit-identical to the CPU's.
* Work is done ``CHUNK_SIZE`` images at a time into the preallocated output, so peak memory is the
  (n, 784) float32 output and the int64 labels plus one chunk (tens of MB) and the 60,000 source
  images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from cutbench import CutbenchError
from cutbench._validation import resolve_device
from cutbench.datasets.base import load_dataset, register_dataset

MAX_SAMPLES = 8_100_000
"""Size of MNIST8M: 135 deformed copies of each of the 60,000 MNIST training digits."""

CHUNK_SIZE = 8192
"""Images deformed per step (about 100 MB of working memory). Output does not depend on it."""

GAUSSIAN_TRUNCATE = 4.0
"""Kernel radius in standard deviations, scipy.ndimage.gaussian_filter's default."""


def gaussian_smoothing_matrix(size: int, sigma: float) -> np.ndarray:
    """The (size, size) matrix ``G`` with ``G @ v`` = ``v`` smoothed by a Gaussian, zero-padded.

    Row ``i`` holds the normalised kernel ``exp(-t^2 / (2 sigma^2))``, ``|t| <= int(4 sigma + 0.5)``,
    centred on ``i``; taps that fall outside ``0 .. size-1`` are dropped (the signal is zero there),
    exactly as ``scipy.ndimage.gaussian_filter1d(v, sigma, mode="constant")``. A 2-D field ``U`` is
    smoothed as ``G_rows @ U @ G_cols.T``.
    """
    radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    offset = np.arange(size)[None, :] - np.arange(size)[:, None]
    return np.where(np.abs(offset) <= radius, kernel[np.clip(offset + radius, 0, 2 * radius)], 0.0)


def _philox_key(random_state: int) -> np.ndarray:
    return np.random.Philox(np.random.SeedSequence(random_state)).state["state"]["key"]


def _signed_uniforms(key: np.ndarray, start: int, stop: int, per_sample: int) -> np.ndarray:
    """float32 U[-1, 1) variates, shape (stop - start, per_sample); row ``i`` depends only on ``key``
    and ``start + i``.

    Each sample owns ``ceil(per_sample / 2)`` consecutive 64-bit words of the Philox stream; each
    word gives two variates (its little-endian 32-bit halves, top 23 bits used as the mantissa).
    """
    words_per_sample = math.ceil(per_sample / 2)
    first_word = start * words_per_sample
    # A Philox counter step yields 4 words; start on the step holding the first word, skip the rest.
    bit_generator = np.random.Philox(key=key, counter=first_word // 4)
    bit_generator.random_raw(first_word % 4)
    words = bit_generator.random_raw((stop - start) * words_per_sample)
    bits = words.astype("<u8", copy=False).view("<u4")
    # Mantissa bits under exponent 1 give a float in [2, 4); minus 3 puts it in [-1, 1), 2^-22 apart.
    bits >>= np.uint32(9)
    bits |= np.uint32(0x40000000)
    variates = bits.view("<f4").astype(np.float32, copy=False)
    variates -= np.float32(3.0)
    return variates.reshape(stop - start, 2 * words_per_sample)[:, :per_sample]


def _deform(images: torch.Tensor, uniforms: torch.Tensor, smooth_rows: torch.Tensor, smooth_cols: torch.Tensor,
            alpha: float, max_shift: float) -> torch.Tensor:
    """Elastic deformation plus translation of ``images`` (m, h, w) driven by ``uniforms``
    (m, 2 h w + 2) in [-1, 1); returns (m, h, w) in [0, 1] on the images' device.

    ``uniforms[:, :h*w]`` is the row-displacement noise, ``[:, h*w:2*h*w]`` the column one (both
    row-major), and the last two columns the row and column shifts.
    """
    m, height, width = images.shape
    noise = uniforms[:, :2 * height * width].reshape(m, 2, height, width)
    displacement = alpha * (smooth_rows @ noise @ smooth_cols.T)
    shift = max_shift * uniforms[:, 2 * height * width:]
    rows = torch.arange(height, dtype=images.dtype, device=images.device)[:, None]
    cols = torch.arange(width, dtype=images.dtype, device=images.device)[None, :]
    sample_rows = rows + displacement[:, 0] + shift[:, 0, None, None]
    sample_cols = cols + displacement[:, 1] + shift[:, 1, None, None]
    # grid_sample with align_corners=True maps -1 and +1 onto the centres of the border pixels.
    grid = torch.stack([sample_cols * (2.0 / (width - 1)) - 1.0, sample_rows * (2.0 / (height - 1)) - 1.0], dim=-1)
    warped = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return warped[:, 0].clamp_(0.0, 1.0)


def _check_params(n, alpha, sigma, max_shift, random_state) -> None:
    where = "dataset 'mnist8m_like'"
    if not 1 <= n <= MAX_SAMPLES:
        raise CutbenchError(f"{where}: n={n} is out of range; MNIST8M has {MAX_SAMPLES:,} images, "
                            f"use 1 <= n <= {MAX_SAMPLES}.")
    if alpha < 0:
        raise CutbenchError(f"{where}: alpha={alpha} must be >= 0 (deformation strength in pixels; "
                            "0 turns the elastic part off, Simard et al. use 34).")
    if sigma <= 0:
        raise CutbenchError(f"{where}: sigma={sigma} must be > 0 (smoothness of the displacement field in "
                            "pixels; Simard et al. use 4).")
    if max_shift < 0:
        raise CutbenchError(f"{where}: max_shift={max_shift} must be >= 0 (largest translation in pixels; "
                            "0 turns translations off).")
    if random_state < 0:
        raise CutbenchError(f"{where}: random_state={random_state} must be a non-negative integer seed.")


def _generate(images, labels, n, alpha, sigma, max_shift, random_state, device, chunk_size=CHUNK_SIZE):
    """Deformed copies of ``images`` (n_source, h, w) in [0, 1]: sample ``i`` comes from source
    ``i % n_source`` and has label ``labels[i % n_source]``. Returns X (n, h*w) float32, y (n,) int64."""
    images = np.asarray(images)
    if images.ndim != 3 or min(images.shape[1:]) < 2 or len(images) == 0:
        raise CutbenchError(f"source images must have shape (n_source, height, width) with height and width >= 2; "
                            f"got {images.shape}.")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != images.shape[:1]:
        raise CutbenchError(f"source labels must have shape ({len(images)},), one per image; got {labels.shape}.")
    n_source, height, width = images.shape
    source = torch.as_tensor(images, dtype=torch.float32).to(device)
    smooth_rows = torch.as_tensor(gaussian_smoothing_matrix(height, sigma), dtype=torch.float32).to(device)
    smooth_cols = torch.as_tensor(gaussian_smoothing_matrix(width, sigma), dtype=torch.float32).to(device)
    key = _philox_key(random_state)
    X = np.empty((n, height * width), dtype=np.float32)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        uniforms = torch.from_numpy(_signed_uniforms(key, start, stop, 2 * height * width + 2)).to(device)
        which = torch.arange(start, stop, device=device) % n_source
        deformed = _deform(source[which], uniforms, smooth_rows, smooth_cols, alpha, max_shift)
        X[start:stop] = deformed.reshape(stop - start, -1).cpu().numpy()
    y = labels[np.arange(n) % n_source]
    return X, y


@register_dataset("mnist8m_like")
def mnist8m_like(n=60_000, alpha=34.0, sigma=4.0, max_shift=2.0, random_state=0, device="cpu"):
    """``n`` elastically deformed and translated MNIST training digits (see the module docstring).

    Parameters
    ----------
    n : int
        Number of images, 1 .. 8,100,000. Sample ``i`` is a deformation of training digit
        ``i % 60000`` (so class counts follow MNIST's training set).
    alpha : float
        Scale of the smoothed displacement field, in pixels per unit of noise (Simard et al.: 34).
    sigma : float
        Standard deviation, in pixels, of the Gaussian that smooths the noise (Simard et al.: 4).
    max_shift : float
        Each image is also translated by U[-max_shift, max_shift) pixels along each axis.
    random_state : int
        Seed; the same seed gives the same images on the same device, for any chunking.
    device : str
        "cpu" (default, bit-reproducible), "cuda", "cuda:N" or "auto". CUDA output agrees with
        the CPU's to float32 rounding only.

    Returns X (n, 784) float32 in [0, 1], y (n,) int64 and extra meta: ``image_shape`` (28, 28),
    ``class_names`` and ``source_fingerprint`` (that of the MNIST training split used). The source
    digits come from the ``"mnist"`` dataset's training split, which must be available (see its
    loader).
    """
    _check_params(n, alpha, sigma, max_shift, random_state)
    torch_device = resolve_device(device)
    source = load_dataset("mnist", split="train")
    image_shape = tuple(source.meta["image_shape"])
    X, y = _generate(source.X.reshape(-1, *image_shape), source.y, n, alpha, sigma, max_shift, random_state,
                     torch_device)
    extra_meta = {"image_shape": image_shape, "class_names": source.meta["class_names"],
                  "source_fingerprint": source.meta["fingerprint"]}
    return X, y, extra_meta
