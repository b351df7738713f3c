"""The one trainer of cutbench's networks: seeded builders, the epoch loop, schedules, inference.

Every neural method (NeuNcut, NeuRcut, SpectralNet, SpecNet2, CNC) and every learned affinity
(Siamese) trains through :class:`Trainer`, so they share one set of conventions:

* networks are drawn from a CPU ``torch.Generator`` only (:func:`seeded_mlp`), so a seed gives the
  same network on every device and the global torch RNG is never consumed;
* per-step terms stay on the device and are summed there; they are read back once per epoch, and
  only when something needs them every epoch (a plateau schedule or a learning-rate floor);
  otherwise once when training ends, so logging adds no host synchronisation to a timed fit;
* epoch means are taken in float64; ``history_`` holds them and the learning rate of each epoch;
* divergence (a non-finite epoch loss) is one error, and a collapsed labelling one warning, each
  naming the method, the epoch or the count, and what to try.

A method keeps only what is its own: its network shape, its loss and batches (a generator of steps,
see :meth:`Trainer.run`) and its choice of optimiser and schedule.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from cutbench import CutbenchError, CutbenchWarning
from cutbench.params import Options

DTYPES = {"float32": torch.float32, "float64": torch.float64}
"""Floating-point types a network method can train in, by the name its ``dtype`` parameter takes."""

DTYPE_CONSTRAINT = Options(*DTYPES)

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus, "tanh": nn.Tanh}
"""Activation names accepted by :func:`seeded_mlp`."""

INITIALISATIONS = ("torch", "neuncut", "glorot")
"""Weight initialisations of :func:`seeded_mlp`:

* ``"torch"``: torch's ``nn.Linear`` default (Kaiming-uniform with ``a = sqrt(5)``, biases uniform in
  ``±1/sqrt(fan_in)``), used by the PyTorch references of SpectralNet, SpecNet2 and the Siamese net;
* ``"neuncut"``: the NeuNcut reference (``models.py``): hidden layers Kaiming-uniform (``a = 0``), the
  output layer Xavier-uniform, all biases zero;
* ``"glorot"``: Keras' default of the CNC reference: Xavier-uniform weights, zero biases.
"""


def seeded_mlp(widths, *, activation="relu", output_activation=None, init="torch", generator,
               dtype=torch.float32) -> nn.Sequential:
    """A Linear/activation stack ``widths[0] -> ... -> widths[-1]`` drawn from ``generator`` only.

    The layers are created on the meta device and filled on the CPU, layer by layer (weight, then
    bias), so the global torch RNG is never consumed and the same seed gives the same network on any
    device.

    Parameters
    ----------
    widths : sequence of int
        Input width, hidden widths, output width.
    activation : str, default="relu"
        Activation after each hidden layer, a key of :data:`ACTIVATIONS`.
    output_activation : str or None, default=None
        Activation after the last layer; None leaves it linear.
    init : {"torch", "neuncut", "glorot"}, default="torch"
        See :data:`INITIALISATIONS`.
    generator : torch.Generator
        CPU generator the parameters are drawn from.
    dtype : torch.dtype, default=torch.float32

    Returns
    -------
    torch.nn.Sequential on the CPU
    """
    for name in (activation, output_activation):
        if name is not None and name not in ACTIVATIONS:
            raise CutbenchError(f"unknown activation {name!r}; accepted: {', '.join(map(repr, ACTIVATIONS))}.")
    if init not in INITIALISATIONS:
        raise CutbenchError(f"unknown initialisation {init!r}; accepted: {', '.join(map(repr, INITIALISATIONS))}.")
    layers: list[nn.Module] = []
    n_layers = len(widths) - 1
    for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(width_in, width_out, device="meta", dtype=dtype))
        after = activation if index < n_layers - 1 else output_activation
        if after is not None:
            layers.append(ACTIVATIONS[after]())
    model = nn.Sequential(*layers).to_empty(device="cpu")
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    with torch.no_grad():
        for index, layer in enumerate(linears):
            if init == "torch":
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
                continue
            if init == "neuncut" and index < len(linears) - 1:
                nn.init.kaiming_uniform_(layer.weight, a=0, generator=generator)
            else:
                nn.init.xavier_uniform_(layer.weight, generator=generator)
            layer.bias.zero_()
    return model


def plateau_schedule(optimizer, *, factor, patience, strict=False):
    """torch's ``ReduceLROnPlateau`` on the epoch loss.

    ``strict=False`` is torch's default rule (an epoch improves when its loss is below the best by a
    relative 1e-4; a drop smaller than 1e-8 is skipped), which the SpectralNet and Siamese references
    follow through Keras/torch. ``strict=True`` counts any lower loss as an improvement and always
    applies the drop, as the CNC reference's hand-written handler does.
    """
    if strict:
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=factor, patience=patience, threshold=0.0,
                                                          eps=0.0)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=factor, patience=patience)


Step = tuple  # (objective to back-propagate, 1-D tensor of detached terms[, weight])


class Trainer:
    """The epoch loop shared by every network in cutbench.

    Parameters
    ----------
    owner : str
        Names the network in messages, e.g. ``"NeuNcut"``.
    model : torch.nn.Module
        Set to eval mode, without gradients, when training ends.
    optimizer : torch.optim.Optimizer
    terms : tuple of str, default=("loss",)
        Names of the per-step terms a step reports; the first is the epoch loss that divergence and
        a plateau schedule watch.
    scheduler : torch learning-rate scheduler, optional
        Stepped once per epoch; a ``ReduceLROnPlateau`` is given the epoch loss.
    min_lr : float, optional
        Training stops before an epoch whose learning rate is at or below this.
    hint : str, default=""
        What to try when training diverges; ends the error message.
    clip_grad_norm : float, optional
        Clip the gradient of all the optimiser's parameters to this global norm before each step.
    watch : callable, optional
        ``watch() -> float`` after each epoch, e.g. the loss on held-out points: a ``ReduceLROnPlateau`` then
        watches it instead of the epoch loss, and the history keeps it under ``"val_loss"``.
    """

    def __init__(self, owner: str, model: nn.Module, optimizer, *, terms=("loss",), scheduler=None,
                 min_lr: float | None = None, hint: str = "", clip_grad_norm: float | None = None,
                 watch: Callable[[], float] | None = None):
        self.owner, self.model, self.optimizer = owner, model, optimizer
        self.terms, self.scheduler, self.min_lr, self.hint = tuple(terms), scheduler, min_lr, hint
        self.clip_grad_norm = clip_grad_norm
        self.watch = watch

    def _reads_every_epoch(self) -> bool:
        return self.min_lr is not None or isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def run(self, epochs: int, epoch_steps: Callable[[int], Iterator[Step]]) -> dict[str, list[float]]:
        """Train for at most ``epochs`` epochs; return the history.

        Parameters
        ----------
        epochs : int
        epoch_steps : callable
            ``epoch_steps(epoch)`` is a generator: per step it computes the method's objective on its
            batch and yields ``(objective, terms)`` or ``(objective, terms, weight)``; the trainer then
            back-propagates ``objective`` and steps the optimiser before resuming it. ``terms`` is a
            1-D tensor of detached values, one per name in ``terms``; the epoch's value of each is the
            weighted mean over its steps (weights default to 1). A generator that yields ``terms=None``
            returns instead a 1-D tensor of the epoch's terms (e.g. an objective evaluated once at the
            epoch's end).

        Returns
        -------
        dict of list of float
            One entry per term name, then ``"lr"``: the learning rate used in each epoch.

        Raises
        ------
        CutbenchError
            When an epoch loss is not finite: ``"<owner> training diverged at epoch E (loss=nan); <hint>"``.
        """
        device = next(self.model.parameters()).device
        epoch_values, learning_rates, watched = [], [], []
        for epoch in range(epochs):
            lr = self.optimizer.param_groups[0]["lr"]
            if self.min_lr is not None and lr <= self.min_lr:
                break
            learning_rates.append(lr)
            totals, weight, summary = None, 0.0, None
            steps = epoch_steps(epoch)
            while True:
                try:
                    step = next(steps)
                except StopIteration as stop:
                    summary = stop.value
                    break
                objective, terms, *step_weight = step
                self.optimizer.zero_grad(set_to_none=True)
                objective.backward()
                if self.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_([p for group in self.optimizer.param_groups
                                                    for p in group["params"]], self.clip_grad_norm)
                self.optimizer.step()
                if terms is None:  # the epoch's terms come from the generator's return value
                    continue
                if step_weight:
                    terms = terms * step_weight[0]
                    weight += step_weight[0]
                else:
                    weight += 1
                totals = terms if totals is None else totals + terms
            if summary is not None:
                means = summary.to(torch.float64)
            elif totals is None:
                raise CutbenchError(f"{self.owner}: an epoch has no training step; use more training points or "
                                    "a smaller batch_size.")
            else:
                means = totals.to(torch.float64) / weight
            epoch_values.append(means.to(device))
            if self.watch is not None:
                watched.append(float(self.watch()))
                self._check_finite(watched[-1], epoch, "validation loss")
            if self._reads_every_epoch():
                loss = float(means[0])
                self._check_finite(loss, epoch)
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(watched[-1] if self.watch is not None else loss)
            if self.scheduler is not None and not isinstance(self.scheduler,
                                                             torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step()
        values = torch.stack(epoch_values).cpu() if epoch_values else torch.empty(0, len(self.terms))
        for epoch, loss in enumerate(values[:, 0].tolist()):
            self._check_finite(loss, epoch)
        self.model.eval()
        self.model.requires_grad_(False)
        history = {name: values[:, index].tolist() for index, name in enumerate(self.terms)}
        if self.watch is not None:
            history["val_loss"] = watched
        history["lr"] = learning_rates
        return history

    def _check_finite(self, loss: float, epoch: int, name: str | None = None) -> None:
        if not math.isfinite(loss):
            raise CutbenchError(f"{self.owner} training diverged at epoch {epoch + 1} ({name or self.terms[0]}={loss}); "
                                f"{self.hint}")


def warn_if_collapsed(owner: str, labels: np.ndarray, n_clusters: int, hint: str) -> None:
    """Warn when a labelling uses fewer than ``n_clusters`` clusters (a collapsed solution)."""
    n_used = len(np.unique(labels))
    if n_used < n_clusters:
        warnings.warn(f"{owner} used only {n_used} of {n_clusters} clusters on the training data (a collapsed "
                      f"solution); {hint}", CutbenchWarning, stacklevel=4)  # the caller of fit


def forward_in_chunks(model, X, chunk_size, transform=None, *, to_cpu=True) -> torch.Tensor:
    """Run ``model`` over the rows of ``X`` in chunks, without autograd, and concatenate the outputs.

    Parameters
    ----------
    model : torch.nn.Module
        A fitted network; its first parameter decides the device and dtype the input is cast to.
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Rows to run through ``model``, on any device (each chunk is moved on its own).
    chunk_size : int
        Rows per forward pass (the methods' ``predict_batch_size``).
    transform : callable, optional
        Applied to the output of each chunk on the model's device, e.g. ``argmax`` or a
        projection, so that only its (usually smaller) result is kept and moved.
    to_cpu : bool, default=True
        Move each chunk's result to the CPU. ``False`` keeps the result on the model's device for
        further device-side work.

    Returns
    -------
    torch.Tensor
        The per-chunk results concatenated along the first axis; an ordinary tensor without
        autograd history, so it may be updated in place.
    """
    parameter = next(model.parameters())
    result = None
    for start in range(0, X.shape[0], chunk_size):
        with torch.inference_mode():
            # Chunking bounds the device memory of a forward pass over many points, and moving one
            # chunk at a time means X itself (e.g. a large numpy array) never has to fit there.
            chunk = torch.as_tensor(X[start:start + chunk_size])
            output = model(chunk.to(device=parameter.device, dtype=parameter.dtype))
            if transform is not None:
                output = transform(output)
            # Off the device as soon as computed: the device then holds one chunk's output at a time.
            output = output.cpu() if to_cpu else output
        if result is None:
            # One result, filled chunk by chunk: keeping each small chunk output between the large
            # activations fragmented the heap (about 2 KB of host memory per row: 19 GB for 10 million).
            # Allocated outside inference mode, so callers may update it in place (SpecNet2's cache).
            result = torch.empty((X.shape[0], *output.shape[1:]), dtype=output.dtype, device=output.device)
        result[start:start + output.shape[0]] = output
    return result


def argmax_labels(model, X, chunk_size) -> np.ndarray:
    """``argmax`` of the network's outputs for each row of ``X``, as int64 numpy labels."""
    return forward_in_chunks(model, X, chunk_size, lambda logits: logits.argmax(dim=1)).numpy().astype(np.int64)


def softmax_memberships(model, X, chunk_size, temperature: float = 1.0) -> np.ndarray:
    """``softmax(outputs / temperature)`` for each row of ``X``, as numpy."""
    return forward_in_chunks(model, X, chunk_size, lambda logits: torch.softmax(logits / temperature, dim=1)).numpy()


__all__ = ["ACTIVATIONS", "DTYPES", "DTYPE_CONSTRAINT", "INITIALISATIONS", "Trainer", "argmax_labels",
           "forward_in_chunks", "plateau_schedule", "seeded_mlp", "softmax_memberships", "warn_if_collapsed"]
