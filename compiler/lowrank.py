"""Low-rank factorization of fully connected layers by truncated SVD.

``W (out x in) ~= U_r S_r V_r^T`` becomes two Dense layers: ``<name>.v`` with weight ``sqrt(S_r) V_r^T`` (r x in)
and no bias, then ``<name>.u`` with weight ``U_r sqrt(S_r)`` (out x r) and the original bias. The rank is given
directly or as the smallest rank keeping a fraction of the energy (the sum of squared singular values).
"""

import numpy as np

from .checks import weight_array
from .errors import ConfigError
from .ir import Dense, Model

__all__ = ["rank_for_energy", "factorize_dense", "factorize"]


def rank_for_energy(singular_values, energy):
    """Smallest rank whose singular values keep at least ``energy`` (in (0, 1]) of ``sum(s**2)``."""
    if not 0 < energy <= 1:
        raise ConfigError(f"the energy fraction must be in (0, 1], got {energy!r}")
    cumulative = np.cumsum(np.asarray(singular_values, dtype=np.float64) ** 2)
    return int(np.searchsorted(cumulative, energy * cumulative[-1] * (1 - 1e-12)) + 1)


def factorize_dense(layer, rank=None, energy=None):
    """Split Dense ``layer`` into two Dense layers of rank ``rank`` (or of the rank keeping ``energy``)."""
    if (rank is None) == (energy is None):
        raise ConfigError("give either rank= or energy= for a low-rank factorization, exactly one of the two")
    weight = weight_array(layer.weight, f"layer {layer.name!r}: weight", 2)
    u, s, vt = np.linalg.svd(weight.astype(np.float64), full_matrices=False)
    rank = rank_for_energy(s, energy) if rank is None else rank
    if not (isinstance(rank, (int, np.integer)) and 1 <= rank <= len(s)):
        raise ConfigError(f"layer {layer.name!r}: rank must be an integer in [1, {len(s)}], got {rank!r}")
    root = np.sqrt(s[:rank])
    return (Dense(f"{layer.name}.v", root[:, None] * vt[:rank], np.zeros(rank, np.float32)),
            Dense(f"{layer.name}.u", u[:, :rank] * root, layer.bias))


def factorize(model, layers, rank=None, energy=None):
    """A copy of ``model`` with each Dense layer named in ``layers`` replaced by its two-layer factorization."""
    missing = [n for n in layers if not isinstance(model.layer(n), Dense)]
    if missing:
        raise ConfigError(f"low-rank factorization applies to Dense layers; {missing} are not")
    new_layers = []
    for layer in model.layers:
        new_layers.extend(factorize_dense(layer, rank, energy) if layer.name in layers else [layer])
    return Model(new_layers, model.input_shape, notes=list(model.notes))
