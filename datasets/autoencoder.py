"""Autoencoder features: the DEC-style d-500-500-2000-10 autoencoder's code (NeuNcut settings II-III).

The network is DEC's (Xie, Girshick and Farhadi, ICML 2016), which SpectralNet, CNC and NeuNcut
use for their "AE features": an encoder d-500-500-2000-10 with ReLU after every hidden layer and a
linear 10-d code, a mirrored decoder 10-2000-500-500-d with a linear output, and a mean squared
reconstruction error. The feature is the encoder's code.

How it is trained here, and how that differs from DEC:

* End to end from the start: all eight layers are trained together on the reconstruction loss
  with Adam (lr 1e-3, batch 256 by default, optional L2 weight decay). DEC instead pretrains
  greedily, layer by layer, each layer as a denoising autoencoder (20% dropout on its input,
  50,000 iterations per layer), then fine-tunes the whole stack for 100,000 iterations with SGD
  (lr 0.1, divided by 10 every 20,000 iterations). The published DEC weights are not used;
  end-to-end Adam training is what the PyTorch re-implementations (IDEC's, SpectralNet's) do.
* No input corruption and no learning-rate schedule; a fixed number of epochs (full passes over a
  reshuffled copy of the data), and the last epoch's weights are used.
* Weights start from PyTorch's default ``nn.Linear`` initialisation, drawn on the CPU from the seed
  (so CPU and CUDA runs start from the same weights); the batch order comes from the same seed.
  On the CPU a seed gives the same features every time; on CUDA results can differ in the last
  bits from run to run (cuBLAS) and differ from the CPU's.
* The input is used as given (no scaling): put a step before this one if the features need it;
  raw pixels in [0, 1] are what DEC trains on.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from cutbench import CutbenchError
from cutbench.datasets.features import register_step

ENCODE_BATCH_SIZE = 8192
"""Rows encoded at a time once training is done; bounds the memory of the final pass."""


class Autoencoder(nn.Module):
    """Fully connected autoencoder: ``n_features -> *hidden_dims -> code_dim -> reversed(hidden_dims) -> n_features``.

    ReLU follows every hidden layer; the code and the reconstruction are linear.

    Parameters
    ----------
    n_features : int
        Input (and output) dimension.
    hidden_dims : sequence of int
        Widths of the encoder's hidden layers, input side first; the decoder uses them reversed.
    code_dim : int
        Dimension of the code (the features this module produces).
    """

    def __init__(self, n_features: int, hidden_dims, code_dim: int):
        super().__init__()
        encoder_dims = [n_features, *hidden_dims, code_dim]
        self.encoder = _mlp(encoder_dims)
        self.decoder = _mlp(encoder_dims[::-1])

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``X``."""
        return self.decoder(self.encoder(X))


def _mlp(dims) -> nn.Sequential:
    """Linear layers through ``dims`` with ReLU between them and none after the last."""
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        if index:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


def _check_positive_int(name: str, value, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise CutbenchError(f"autoencoder {name} must be a positive integer; got {value!r}. {hint}")
    return int(value)


def _check_settings(hidden_dims, code_dim, epochs, batch_size, lr, weight_decay) -> tuple:
    if isinstance(hidden_dims, (str, bytes)) or not hasattr(hidden_dims, "__iter__"):
        raise CutbenchError(f"autoencoder hidden_dims must be a list of positive layer widths, e.g. [500, 500, 2000]; "
                            f"got {hidden_dims!r}.")
    hidden_dims = tuple(_check_positive_int("hidden_dims entry", width, "Use e.g. [500, 500, 2000].")
                        for width in hidden_dims)
    code_dim = _check_positive_int("code_dim", code_dim, "DEC's code has 10 dimensions.")
    epochs = _check_positive_int("epochs", epochs, "Use the number of passes over the data, e.g. 50.")
    batch_size = _check_positive_int("batch_size", batch_size, "DEC uses 256.")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise CutbenchError(f"autoencoder lr must be a positive finite number (Adam's step size); got {lr!r}. "
                            "The default is 1e-3.")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or \
            not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise CutbenchError(f"autoencoder weight_decay must be a finite number >= 0 (L2 penalty); "
                            f"got {weight_decay!r}. Use 0 for none.")
    return hidden_dims, code_dim, epochs, batch_size, float(lr), float(weight_decay)


def train_autoencoder(X, *, hidden_dims=(500, 500, 2000), code_dim=10, epochs=50, batch_size=256, lr=1e-3,
                      weight_decay=0.0, device="cpu", random_state=0):
    """Train an :class:`Autoencoder` on ``X`` end to end with Adam and a mean squared error.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training data, used as given (no scaling).
    hidden_dims : sequence of int, default (500, 500, 2000)
        Encoder hidden widths (DEC's); the decoder mirrors them.
    code_dim : int, default 10
        Code dimension.
    epochs : int, default 50
        Passes over the data, each in a fresh random order.
    batch_size : int, default 256
        Rows per Adam step; the last batch of an epoch may be smaller (the whole set when
        ``batch_size >= n_samples``).
    lr : float, default 1e-3
        Adam learning rate.
    weight_decay : float, default 0.0
        Adam's L2 penalty on all weights and biases.
    device : str or torch.device, default "cpu"
        Where to train; ``X`` is moved there once.
    random_state : int, default 0
        Seed of the initial weights and of the batch order.

    Returns
    -------
    model : Autoencoder
        The trained network, on ``device``.
    history : dict
        ``{"loss": [...]}``: per epoch, the mean reconstruction error over that epoch's batches
        (weighted by batch size), as measured while training.
    """
    hidden_dims, code_dim, epochs, batch_size, lr, weight_decay = _check_settings(
        hidden_dims, code_dim, epochs, batch_size, lr, weight_decay)
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) or random_state < 0:
        raise CutbenchError(f"autoencoder random_state must be a non-negative integer seed; got {random_state!r}.")
    device = torch.device(device)
    data = torch.as_tensor(np.asarray(X, dtype=np.float32)).to(device)
    n_samples = data.shape[0]
    # Initial weights come from the seed, drawn on the CPU, without touching torch's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(random_state))
        model = Autoencoder(data.shape[1], hidden_dims, code_dim)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    order_generator = torch.Generator().manual_seed(int(random_state))
    history = {"loss": []}
    for _ in range(epochs):
        order = torch.randperm(n_samples, generator=order_generator).to(device)
        total = torch.zeros((), device=device)
        for batch_start in range(0, n_samples, batch_size):
            batch = data[order[batch_start:batch_start + batch_size]]
            loss = nn.functional.mse_loss(model(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * batch.shape[0]
        history["loss"].append(total.item() / n_samples)
    return model, history


@torch.no_grad()
def encode(model: Autoencoder, X) -> np.ndarray:
    """The code of every row of ``X`` (numpy, any float dtype) as an (n_samples, code_dim) float32 array."""
    device = next(model.parameters()).device
    data = np.asarray(X, dtype=np.float32)
    code_dim = model.encoder[-1].out_features
    codes = np.empty((data.shape[0], code_dim), dtype=np.float32)
    for start in range(0, data.shape[0], ENCODE_BATCH_SIZE):
        batch = torch.from_numpy(data[start:start + ENCODE_BATCH_SIZE]).to(device)
        codes[start:start + len(batch)] = model.encoder(batch).cpu().numpy()
    return codes


@register_step("autoencoder")
def autoencoder_features(X, meta, *, device, random_state, hidden_dims=(500, 500, 2000), code_dim=10, epochs=50,
                         batch_size=256, lr=1e-3, weight_decay=0.0):
    """Feature step ``"autoencoder"``: train the autoencoder on ``X`` and return its code.

    Parameters are those of :func:`train_autoencoder`; ``device`` and ``random_state`` come from
    the pipeline. Returns an (n_samples, code_dim) float32 array.
    """
    model, _ = train_autoencoder(X, hidden_dims=hidden_dims, code_dim=code_dim, epochs=epochs,
                                 batch_size=batch_size, lr=lr, weight_decay=weight_decay, device=device,
                                 random_state=random_state)
    return encode(model, X)
