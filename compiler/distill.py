"""Knowledge distillation (Hinton, Vinyals and Dean, 2015): a small student learns from a teacher's softened outputs.

At temperature ``T`` the teacher's soft targets are ``p = softmax(z_teacher / T)`` and the student's softened
prediction is ``q = softmax(z_student / T)``. The per-sample loss combines the hard and the soft terms:

    loss = (1 - alpha) * CE(softmax(z_student), label) + alpha * T**2 * KL(p || q)

The ``T**2`` factor keeps the soft term's gradient, ``alpha * T * (q - p)`` with respect to ``z_student``, of the
same size as the hard term's whatever ``T`` is. The loss is averaged over the minibatch.
"""

import numpy as np

from .errors import ConfigError, ShapeError
from .ir import forward
from .train import fit, softmax_cross_entropy

__all__ = ["soft_targets", "distillation_loss", "distill"]


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def soft_targets(teacher, x, y, temperature):
    """The per-sample targets :func:`distillation_loss` reads: a structured array with fields ``label`` (int64) and
    ``soft`` (the teacher's ``softmax(logits / T)``, float64 per class)."""
    if not temperature > 0:
        raise ConfigError(f"the distillation temperature must be > 0, got {temperature!r}")
    logits = np.asarray(forward(teacher, x), dtype=np.float64)
    y = np.asarray(y)
    if y.shape != (len(x),):
        raise ShapeError(f"need one label per sample: {len(x)} samples but labels of shape {y.shape}")
    targets = np.empty(len(x), dtype=[("label", np.int64), ("soft", np.float64, (logits.shape[1],))])
    targets["label"] = y
    targets["soft"] = np.exp(_log_softmax(logits / temperature))
    return targets


def distillation_loss(temperature, alpha):
    """The loss ``(logits, targets) -> (mean loss, gradient w.r.t. logits)`` of the module docstring, for
    :func:`sparq.compiler.train.fit`'s ``loss``; ``targets`` come from :func:`soft_targets` at the same temperature."""
    if not temperature > 0 or not 0 <= alpha <= 1:
        raise ConfigError(f"distillation needs temperature > 0 and 0 <= alpha <= 1; got T={temperature!r}, "
                          f"alpha={alpha!r}")

    def loss(logits, targets):
        hard, hard_grad = softmax_cross_entropy(logits, targets["label"])
        p = targets["soft"]
        log_q = _log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(p > 0, p * (np.log(p) - log_q), 0.0).sum(axis=1).mean()
        soft_grad = temperature * (np.exp(log_q) - p) / len(p)
        value = (1 - alpha) * hard + alpha * temperature ** 2 * kl
        return float(value), ((1 - alpha) * hard_grad + alpha * soft_grad).astype(np.float32)

    return loss


def distill(teacher, student, x, y, *, temperature=4.0, alpha=0.7, epochs, lr=1e-3, batch_size=32, seed=0,
            weight_decay=0.0, progress=None):
    """Train ``student`` on ``(x, y)`` against the teacher's soft targets at ``temperature`` (weight ``alpha``)
    and the labels (weight ``1 - alpha``); return the trained copy."""
    return fit(student, x, soft_targets(teacher, x, y, temperature), epochs=epochs, lr=lr, batch_size=batch_size,
               seed=seed, weight_decay=weight_decay, desc=f"distill T={temperature:g}", progress=progress,
               loss=distillation_loss(temperature, alpha))
