"""DSD: dense-sparse-dense training (Han et al., ICLR 2017) on the numpy trainer.

Three phases, each a call of :func:`sparq.compiler.train.fit` (a fresh Adam state each):

1. **Dense**: train the model as usual for ``dense_epochs`` at ``lr``.
2. **Sparse**: prune each named layer to its ``sparsity`` by weight magnitude (one shot, as in the paper) and retrain
   for ``sparse_epochs`` at ``lr`` with the masks fixed (:class:`sparq.compiler.prune.MaskedWeight`).
3. **Re-dense**: drop the masks; the pruned weights restart from exactly zero and the whole model trains for
   ``redense_epochs`` at ``lr * redense_lr_scale`` (the paper uses a tenth of the dense learning rate).

The matching baseline, :func:`dense_baseline`, trains the same model for the same total number of epochs at ``lr``,
so a comparison spends the same budget of epochs (and of minibatch steps) on both.
"""

from dataclasses import dataclass

from .errors import ConfigError
from .prune import MaskedWeight, magnitude_mask
from .train import fit

__all__ = ["DsdSchedule", "dsd_train", "dense_baseline"]


@dataclass(frozen=True)
class DsdSchedule:
    """Epochs and learning rates of the three DSD phases; ``sparsity`` maps layer names to the pruned fraction."""

    sparsity: dict
    dense_epochs: int
    sparse_epochs: int
    redense_epochs: int
    lr: float = 1e-3
    redense_lr_scale: float = 0.1
    batch_size: int = 32
    weight_decay: float = 0.0

    def __post_init__(self):
        epochs = (self.dense_epochs, self.sparse_epochs, self.redense_epochs)
        if any(int(e) != e or e < 0 for e in epochs) or not 0 < self.redense_lr_scale <= 1:
            raise ConfigError(f"DSD needs non-negative whole epochs per phase and 0 < redense_lr_scale <= 1; got "
                              f"epochs {epochs} and redense_lr_scale={self.redense_lr_scale}")
        if not self.sparsity:
            raise ConfigError("DSD needs at least one layer to prune: give sparsity={layer name: fraction}")

    @property
    def total_epochs(self):
        """The epoch budget of the whole schedule, which :func:`dense_baseline` also spends."""
        return self.dense_epochs + self.sparse_epochs + self.redense_epochs


def dsd_train(model, x, y, schedule, *, seed=0, progress=None):
    """Dense-sparse-dense training of ``model`` on ``(x, y)``; return ``(model, masks)``.

    ``masks`` are the sparse phase's masks (True = kept); after the re-dense phase the weights they pruned are
    trained again, starting from zero. Phase ``p`` shuffles its minibatches with ``seed + p``, so a run is
    deterministic.
    """
    names = {layer.name for layer in model.weighted()}
    unknown = set(schedule.sparsity) - names
    if unknown:
        raise ConfigError(f"no weighted layer called {sorted(unknown)}; weighted layers are {sorted(names)}")
    common = dict(batch_size=schedule.batch_size, weight_decay=schedule.weight_decay, progress=progress)
    dense = fit(model, x, y, epochs=schedule.dense_epochs, lr=schedule.lr, seed=seed, desc="DSD dense", **common)
    masks = {n: magnitude_mask(dense.layer(n).weight, s) for n, s in schedule.sparsity.items()}
    sparse = fit(dense, x, y, epochs=schedule.sparse_epochs, lr=schedule.lr, seed=seed + 1, desc="DSD sparse",
                 weights={n: MaskedWeight(dense.layer(n).weight, m) for n, m in masks.items()}, **common)
    redense = fit(sparse, x, y, epochs=schedule.redense_epochs, lr=schedule.lr * schedule.redense_lr_scale,
                  seed=seed + 2, desc="DSD re-dense", **common)
    return redense, masks


def dense_baseline(model, x, y, schedule, *, seed=0, progress=None):
    """The baseline of the same budget: ``schedule.total_epochs`` of plain dense training at ``schedule.lr``."""
    return fit(model, x, y, epochs=schedule.total_epochs, lr=schedule.lr, seed=seed, batch_size=schedule.batch_size,
               weight_decay=schedule.weight_decay, desc="dense baseline", progress=progress)
