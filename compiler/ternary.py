"""Trained ternary quantization (Zhu, Han, Mao and Dally, ICLR 2017).

Each ternarized layer keeps a full-precision latent weight ``w`` and two trained scales: its weight is ``+Wp``
where ``w > delta``, ``-Wn`` where ``w < -delta`` and 0 elsewhere, with ``delta = t * max|w|`` (t = 0.05). The
gradients are those of the paper: ``dL/dWp`` sums the weight gradients over the positive positions, ``dL/dWn``
sums minus them over the negative ones, and the latent weights get the weight gradient scaled by ``Wp``, 1 or
``Wn`` in the positive, zero and negative positions. On EIE a ternary layer is a codebook of three entries
(:meth:`TernaryWeight.shared`).
"""

import numpy as np

from .checks import fraction, weight_array
from .errors import ConfigError
from .ir import Dense
from .share import SharedWeights
from .train import FreeWeight, fit

__all__ = ["TTQ_THRESHOLD", "TernaryWeight", "train_ternary"]

TTQ_THRESHOLD = 0.05


class TernaryWeight(FreeWeight):
    """Training parameterisation of a ternary layer: latent weight plus per-layer scales ``wp`` and ``wn``.

    The scales start at the mean magnitude of the latent weights above ``delta`` and below ``-delta``.
    """

    def __init__(self, weight, threshold=TTQ_THRESHOLD):
        super().__init__(weight_array(weight, "weight to ternarize"))
        self.threshold = fraction(threshold, "ternary threshold")
        positive, negative = self.regions()
        if not positive.any() or not negative.any():
            raise ConfigError("ternary quantization needs weights both above +delta and below -delta; this layer's "
                              "weights are all of one sign")
        self.wp = np.array([self.w[positive].mean()], dtype=np.float32)
        self.wn = np.array([-self.w[negative].mean()], dtype=np.float32)

    def regions(self):
        """Masks of the positive (``w > delta``) and negative (``w < -delta``) positions."""
        delta = self.threshold * np.abs(self.w).max()
        return self.w > delta, self.w < -delta

    def params(self):
        """The latent weight and the two scales."""
        return [self.w, self.wp, self.wn]

    def weight(self):
        """The ternary weight ``{+Wp, 0, -Wn}``."""
        positive, negative = self.regions()
        return (self.wp[0] * positive - self.wn[0] * negative).astype(np.float32)

    def grads(self, grad_weight):
        """Gradients of the latent weight, ``Wp`` and ``Wn`` (Zhu et al., eqs. 6-8)."""
        positive, negative = self.regions()
        scale = np.where(positive, self.wp[0], np.where(negative, self.wn[0], 1.0))
        return [(grad_weight * scale).astype(np.float32),
                np.array([grad_weight[positive].sum()], dtype=np.float32),
                np.array([-grad_weight[negative].sum()], dtype=np.float32)]

    def project(self):
        """Keep both scales non-negative."""
        np.maximum(self.wp, 0.0, out=self.wp)
        np.maximum(self.wn, 0.0, out=self.wn)

    def shared(self):
        """The layer as 2-bit :class:`~sparq.compiler.share.SharedWeights`: codebook ``[0, -Wn, +Wp, 0]`` (entry 3
        unused), zero kept as code 0."""
        positive, negative = self.regions()
        codes = (positive * 2 + negative).astype(np.uint8)
        return SharedWeights(codes, np.array([0.0, -self.wn[0], self.wp[0], 0.0], dtype=np.float32))


def train_ternary(model, x, y, layers=None, threshold=TTQ_THRESHOLD, *, epochs=20, lr=5e-4, batch_size=32, seed=0,
                  progress=None):
    """Ternarize the weighted layers named in ``layers`` (default: every Dense layer) and train them with TTQ.

    Starts from the trained float ``model``; returns ``(model, {name: TernaryWeight})``, the model's named layers
    holding their ternary weights.
    """
    names = layers if layers is not None else [lay.name for lay in model.weighted() if isinstance(lay, Dense)]
    ternary = {name: TernaryWeight(model.layer(name).weight, threshold) for name in names}
    trained = fit(model, x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, weights=ternary,
                  desc="ternary", progress=progress)
    return trained, ternary
