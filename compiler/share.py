"""Weight sharing (Deep Compression, step 2): 1-D k-means per layer, and centroid fine-tuning.

Each layer gets its own codebook of 2**bits centroids; a weight becomes the index (code) of its centroid. With
``keep_zero`` the codebook entry 0 is exactly 0.0 and holds every pruned weight, and the non-zero weights share the
other 2**bits - 1 entries; EIE needs this for its padding entries.

The k-means is exact 1-D Lloyd: the values are sorted once, a cluster is then a contiguous run of the sorted values
cut at the midpoints between neighbouring centroids, and each step costs a binary search and a prefix-sum lookup per
centroid, independent of the number of weights. It stops when no weight changes cluster, so at the end every weight
belongs to its nearest centroid.
"""

from dataclasses import dataclass

import numpy as np

from .checks import weight_array
from .errors import ConfigError, WeightError
from .train import FreeWeight

__all__ = ["SharedWeights", "INITS", "kmeans_1d", "nearest_codes", "share_weights", "centroid_gradients",
           "finetune_centroids", "CodebookWeight"]

INITS = ("linear", "density", "random")


@dataclass(eq=False)
class SharedWeights:
    """A shared-weight layer: ``codes`` (uint8, the weight's shape) index ``codebook`` (float32, 2**bits entries).

    With ``keep_zero`` (the default), ``codebook[0] == 0.0``, every zero weight has code 0 and no non-zero weight has
    code 0.
    """

    codes: np.ndarray
    codebook: np.ndarray
    keep_zero: bool = True

    @property
    def bits(self):
        """Bits per code: log2 of the codebook size."""
        return int(np.log2(len(self.codebook)))

    def decode(self):
        """The shared weight, ``codebook[codes]`` (float32)."""
        return self.codebook[self.codes]


def _initial_centroids(sorted_values, distinct, k, init, rng):
    """k starting centroids over the sorted values: linear spacing, the density (CDF) or random distinct values."""
    if init == "linear":
        return np.linspace(sorted_values[0], sorted_values[-1], k)
    if init == "density":
        n = len(sorted_values)
        return sorted_values[((np.arange(k) + 0.5) / k * n).astype(np.int64)].astype(np.float64)
    return np.sort(rng.choice(distinct, size=k, replace=False)).astype(np.float64)


def kmeans_1d(values, k, init="linear", max_iter=100, seed=0):
    """Centroids (float64, ascending, length ``k``) of 1-D k-means of ``values`` by Lloyd's algorithm.

    ``init`` is ``"linear"`` (evenly spaced over [min, max], best per the paper), ``"density"`` (evenly spaced over
    the CDF: the quantiles at (i + 1/2) / k) or ``"random"`` (Forgy: k distinct values drawn with ``seed``). An empty
    cluster (linear centroids in the gap that pruning leaves around zero, say) is moved to the value farthest from
    the centroid of the cluster with the largest squared error, so all k codes end up used. Stops when no value
    changes cluster and none is empty, or after ``max_iter`` steps.
    """
    if init not in INITS:
        raise ConfigError(f"unknown k-means initialisation {init!r}; use one of {', '.join(INITS)}")
    if not 1 <= k:
        raise ConfigError(f"k-means needs at least one cluster, got {k}")
    x = np.sort(np.asarray(values, dtype=np.float32).ravel())
    if x.size == 0:
        raise WeightError("no weights to cluster: the layer is empty or fully pruned; prune less or drop the layer")
    is_new = np.empty(x.size, dtype=bool)
    is_new[0] = True
    np.not_equal(x[1:], x[:-1], out=is_new[1:])
    n_distinct = int(is_new.sum())
    if k > n_distinct:
        raise WeightError(f"{k} clusters asked for but the weights have only {n_distinct} distinct values; use fewer "
                          f"bits (at most {int(np.log2(n_distinct)) if n_distinct else 0}) or prune less")
    prefix = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    prefix_sq = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    centroids = _initial_centroids(x, x[is_new], k, init, np.random.default_rng(seed))
    bounds = None
    for _ in range(max_iter):
        new_bounds = np.searchsorted(x, (centroids[1:] + centroids[:-1]) / 2, side="right")
        edges = np.concatenate([[0], new_bounds, [x.size]])
        counts = np.diff(edges)
        if bounds is not None and np.array_equal(new_bounds, bounds) and counts.all():
            break
        bounds = new_bounds
        sums = prefix[edges[1:]] - prefix[edges[:-1]]
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if not counts.all():
            errors = prefix_sq[edges[1:]] - prefix_sq[edges[:-1]] - sums * centroids
            centroids = _relocate_empty(x, edges, centroids, np.flatnonzero(counts == 0), errors)
    return centroids


def _relocate_empty(x, edges, centroids, empty, errors):
    """Move each empty cluster's centroid to the value farthest from the centroid of the cluster with the largest
    squared error (one donor per empty cluster), and return the centroids sorted again."""
    centroids = centroids.copy()
    for cluster in empty:  # a loop over at most k clusters, not over weights
        donor = int(np.argmax(errors))
        low, high = x[edges[donor]], x[edges[donor + 1] - 1]
        centroids[cluster] = low if centroids[donor] - low > high - centroids[donor] else high
        errors[donor] = -np.inf
    return np.sort(centroids)


def nearest_codes(values, centroids):
    """Index of the nearest of the ascending ``centroids`` for each value (a tie goes to the lower index)."""
    centroids = np.asarray(centroids, dtype=np.float64)
    return np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values, side="left").astype(np.uint8)


def share_weights(weight, bits, init="linear", keep_zero=True, max_iter=100, seed=0):
    """Cluster one layer's ``weight`` into 2**``bits`` shared values; return :class:`SharedWeights`.

    With ``keep_zero``, zero (pruned) weights get code 0 and value exactly 0.0, and the non-zero weights are
    clustered into the other 2**bits - 1 entries. ``init``, ``max_iter`` and ``seed`` go to :func:`kmeans_1d`.
    Every weight gets the code of its nearest centroid (among the non-zero entries, for a non-zero weight with
    ``keep_zero``). Weights with no more distinct values than clusters (a small layer pruned hard) keep them
    exactly, one entry each; the codebook's unused entries are 0.0.
    """
    if not (isinstance(bits, (int, np.integer)) and 1 <= bits <= 8):
        raise ConfigError(f"weight sharing needs 1 to 8 bits per code (uint8 codes), got {bits!r}")
    weight = weight_array(weight, "weight to share")
    k = 2 ** bits
    if keep_zero:
        if bits == 1 and np.any(weight):
            raise ConfigError("keep_zero with 1 bit leaves one cluster for every non-zero weight; use bits >= 2")
        nonzero = weight != 0
        values = weight[nonzero]
        centroids = _centroids(values, k - 1, init, max_iter, seed)
        codebook = np.zeros(k, dtype=np.float32)
        codebook[1:1 + len(centroids)] = centroids
        codes = np.zeros(weight.shape, dtype=np.uint8)
        codes[nonzero] = nearest_codes(values, codebook[1:1 + len(centroids)]) + 1
    else:
        centroids = _centroids(weight, k, init, max_iter, seed)
        codebook = np.zeros(k, dtype=np.float32)
        codebook[:len(centroids)] = centroids
        codes = nearest_codes(weight, codebook[:len(centroids)])
    return SharedWeights(codes, codebook, keep_zero)


def _centroids(values, k, init, max_iter, seed):
    """At most ``k`` ascending float32 centroids for ``values``: the distinct values themselves when there are no
    more than ``k`` of them, else :func:`kmeans_1d`'s."""
    distinct = np.unique(np.asarray(values, dtype=np.float32))
    if 0 < len(distinct) <= k:
        return distinct
    return kmeans_1d(values, k, init, max_iter, seed).astype(np.float32)


def centroid_gradients(codes, grad_weight, k):
    """The gradient of each of ``k`` centroids: the sum of the gradients of the weights that share it.

    ``dL/dC_k = sum_ij dL/dW_ij * 1(I_ij = k)`` (Deep Compression, Fig. 3).
    """
    return np.bincount(np.ravel(codes), weights=np.ravel(grad_weight), minlength=k)[:k].astype(np.float32)


def finetune_centroids(shared, grad_weight, lr):
    """One plain gradient step on the codebook of ``shared``: ``C_k -= lr * dL/dC_k``; returns new SharedWeights.

    The codes do not change. With ``keep_zero`` entry 0 stays exactly 0.0.
    """
    codebook = shared.codebook - lr * centroid_gradients(shared.codes, grad_weight, len(shared.codebook))
    if shared.keep_zero:
        codebook[0] = 0.0
    return SharedWeights(shared.codes.copy(), codebook.astype(np.float32), shared.keep_zero)


class CodebookWeight(FreeWeight):
    """Training parameterisation of a shared layer: the codebook is trained, the codes are fixed.

    Trains ``shared.codebook`` in place; with ``keep_zero`` entry 0 is held at 0.0.
    """

    def __init__(self, shared):
        self.shared = shared

    def params(self):
        """The codebook."""
        return [self.shared.codebook]

    def weight(self):
        """The decoded weight."""
        return self.shared.decode()

    def grads(self, grad_weight):
        """The centroid gradients."""
        return [centroid_gradients(self.shared.codes, grad_weight, len(self.shared.codebook))]

    def project(self):
        """Hold codebook entry 0 at exactly 0.0 when zero is kept."""
        if self.shared.keep_zero:
            self.shared.codebook[0] = 0.0
