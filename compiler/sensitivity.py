"""Per-layer pruning sensitivity, as Deep Compression chose its sparsities (Han et al., "Learning both Weights and
Connections", Sec. 3.4 and Fig. 5).

:func:`sensitivity_scan` prunes one layer at a time by magnitude to each sparsity of a grid, without retraining,
and measures the accuracy on held-out validation data (never the test split). Each layer's choice is the highest
sparsity of the grid up to which every point loses at most ``max_drop`` accuracy points against the unpruned model:
the curves are noisy on a small validation set, and a lucky point past a drop is not a safe target. The whole model
is then pruned to those targets and retrained (:func:`sparq.compiler.pipeline.compress` with ``sparsity="auto"``).
The scan's curves (``SensitivityScan.curves``, accuracy against ``grid``) are what a report plots.
"""

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError
from .prune import prune_one_shot
from .train import accuracy

__all__ = ["SCAN_GRID", "SensitivityScan", "sensitivity_scan"]

SCAN_GRID = (*np.round(np.arange(0.1, 0.91, 0.1), 2).tolist(), 0.93, 0.95, 0.97, 0.98, 0.99)
"""The sparsities tried per layer: tens to 90 %, then finer steps where the curves of real layers bend."""


@dataclass
class SensitivityScan:
    """The result of :func:`sensitivity_scan` (all plain numbers, so ``asdict`` is JSON).

    ``grid``: the sparsities tried; ``curves[layer]``: validation accuracy (a fraction) at each; ``baseline``: the
    unpruned model's; ``max_drop``: the budget in accuracy points; ``chosen[layer]``: the sparsity picked (0.0 when
    even the first grid point costs more than the budget); ``validation_samples``: the held-out samples measured.
    """

    grid: list
    curves: dict
    baseline: float
    max_drop: float
    chosen: dict
    validation_samples: int

    def to_dict(self):
        """The scan as a JSON-ready dict."""
        return asdict(self)


def _choice(grid, curve, baseline, max_drop):
    """The highest grid sparsity up to which every accuracy stays within ``max_drop`` points of ``baseline``."""
    chosen = 0.0
    for sparsity, value in zip(grid, curve):
        if 100.0 * (baseline - value) > max_drop + 1e-9:
            break
        chosen = sparsity
    return chosen


def sensitivity_scan(model, x_val, y_val, max_drop=0.5, grid=SCAN_GRID, layers=None):
    """Scan each weighted layer of ``model`` (or only ``layers``) over ``grid`` on ``(x_val, y_val)``; return a
    :class:`SensitivityScan`. ``max_drop`` is in accuracy points (0.5 = half a percentage point)."""
    if not (isinstance(max_drop, (int, float, np.integer, np.floating)) and 0 <= max_drop < 100):
        raise ConfigError(f"max_drop is an accuracy budget in points, 0 <= max_drop < 100, got {max_drop!r}")
    grid = sorted(float(s) for s in grid)
    names = [layer.name for layer in model.weighted()] if layers is None else list(layers)
    baseline = accuracy(model, x_val, y_val)
    curves = {name: [accuracy(prune_one_shot(model, {name: s})[0], x_val, y_val) for s in grid] for name in names}
    chosen = {name: _choice(grid, curves[name], baseline, max_drop) for name in names}
    return SensitivityScan(grid, curves, baseline, float(max_drop), chosen, len(y_val))
