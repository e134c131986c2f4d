"""Magnitude pruning (Deep Compression, step 1): per-layer masks and iterative prune-and-retrain.

A mask is a bool array of the weight's shape, True where the weight is kept. During retraining the mask is fixed
(:class:`MaskedWeight`): the gradients of pruned weights are zeroed and pruned weights are set back to exactly zero
after every step, so they stay zero.
"""

import numpy as np

from .checks import fraction, weight_array
from .errors import ConfigError
from .train import FreeWeight, fit

__all__ = ["magnitude_mask", "quality_sparsity", "MaskedWeight", "sparsity_schedule", "prune_one_shot",
           "prune_and_retrain"]


def magnitude_mask(weight, sparsity):
    """Mask keeping all but the ``round(sparsity * size)`` smallest-magnitude weights (ties broken by position).

    ``sparsity`` is the fraction removed, in [0, 1). Exactly that many weights are pruned, but never all of them:
    a layer keeps at least its largest weight.
    """
    weight = weight_array(weight, "weight to prune")
    sparsity = fraction(sparsity, "sparsity")
    n_pruned = min(int(round(sparsity * weight.size)), weight.size - 1)
    mask = np.ones(weight.size, dtype=bool)
    if n_pruned:
        mask[np.argpartition(np.abs(weight).ravel(), n_pruned - 1)[:n_pruned]] = False
    return mask.reshape(weight.shape)


def quality_sparsity(weight, quality):
    """The sparsity that Han's threshold ``quality * std(W)`` gives: the fraction of ``|w| <= quality * std(W)``.

    Converting the threshold to a fraction lets iterative pruning approach it gradually, like a target sparsity.
    """
    weight = weight_array(weight, "weight to prune")
    if not quality >= 0:
        raise ConfigError(f"the pruning quality parameter must be >= 0, got {quality!r}")
    removed = float(np.mean(np.abs(weight) <= quality * weight.std()))
    if removed >= 1.0:
        raise ConfigError(f"quality {quality} prunes every weight (threshold {quality * weight.std():.4g}); use a "
                          f"smaller quality parameter")
    return removed


class MaskedWeight(FreeWeight):
    """A weight trained under a fixed mask: pruned weights get no gradient and stay exactly zero."""

    def __init__(self, weight, mask):
        super().__init__(np.where(mask, weight, 0.0))
        self.mask = np.asarray(mask, dtype=bool)

    def grads(self, grad_weight):
        """The weight gradient with the pruned positions zeroed."""
        return [grad_weight * self.mask]

    def project(self):
        """Set the pruned weights back to exactly zero."""
        self.w *= self.mask


def sparsity_schedule(target, steps):
    """Sparsities of ``steps`` prune-and-retrain rounds reaching ``target``: ``target * (1 - (1 - t/steps)^3)``.

    The cubic schedule of Zhu and Gupta (2017) prunes most in the first rounds, while the network has redundancy
    to spare, and little in the last.
    """
    if steps < 1:
        raise ConfigError(f"iterative pruning needs at least one step, got {steps}")
    return [target * (1.0 - (1.0 - t / steps) ** 3) for t in range(1, steps + 1)]


def _check_names(model, names):
    """A :class:`ConfigError` unless every one of ``names`` is a weighted layer of ``model``."""
    weighted = {layer.name for layer in model.weighted()}
    unknown = set(names) - weighted
    if unknown:
        raise ConfigError(f"no weighted layer called {sorted(unknown)}; weighted layers are {sorted(weighted)}")


def _targets(model, sparsity):
    """``sparsity`` checked against ``model``'s weighted layers: ``{name: fraction in [0, 1)}``."""
    _check_names(model, sparsity)
    return {n: fraction(s, f"sparsity of layer {n!r}") for n, s in sparsity.items()}


def prune_one_shot(model, sparsity):
    """Magnitude pruning in one step, without retraining: a copy of ``model`` with each layer named in
    ``sparsity={layer name: fraction}`` pruned to that fraction, and ``{name: mask}``."""
    import copy

    targets = _targets(model, sparsity)
    model = copy.deepcopy(model)
    masks = {name: magnitude_mask(model.layer(name).weight, s) for name, s in targets.items()}
    for name, mask in masks.items():
        model.layer(name).weight = np.where(mask, model.layer(name).weight, 0.0).astype(np.float32)
    return model, masks


def prune_and_retrain(model, x, y, sparsity=None, quality=None, *, steps=3, epochs=4, lr=5e-4, batch_size=32, seed=0,
                      weight_decay=0.0, progress=None):
    """Iterative magnitude pruning: ``steps`` rounds of prune-then-retrain; return ``(model, masks)``.

    Give per-layer targets as ``sparsity={layer name: fraction}`` or as Han's ``quality={layer name: q}`` (the
    threshold ``q * std(W)`` of the starting weights, turned into a fraction by :func:`quality_sparsity`). Round
    ``t`` prunes each layer to :func:`sparsity_schedule` ``[t]`` by magnitude, never reviving a pruned weight, then
    retrains the whole model for ``epochs`` epochs with the masks fixed. Layers not named are not pruned.
    """
    if (sparsity is None) == (quality is None):
        raise ConfigError("give the pruning targets either as sparsity={layer: fraction} or as quality={layer: q}, "
                          "exactly one of the two")
    _check_names(model, sparsity if sparsity is not None else quality)
    if quality is not None:
        sparsity = {n: quality_sparsity(model.layer(n).weight, q) for n, q in quality.items()}
    targets = _targets(model, sparsity)
    schedules = {n: sparsity_schedule(s, steps) for n, s in targets.items()}
    masks = {n: np.ones(model.layer(n).weight.shape, dtype=bool) for n in targets}
    for step in range(steps):
        for name in targets:
            weight = np.where(masks[name], model.layer(name).weight, 0.0)
            masks[name] &= magnitude_mask(weight, schedules[name][step])
        model = fit(model, x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed + step,
                    weights={n: MaskedWeight(model.layer(n).weight, m) for n, m in masks.items()},
                    weight_decay=weight_decay, desc=f"prune {step + 1}/{steps}", progress=progress)
    return model, masks
