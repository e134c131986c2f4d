"""Range checks before any work starts, and a guard that turns numpy's floating-point warnings into one clear error.

:func:`check_ranges` reports, for every layer at once, the weights and (given data) the activations that the
accelerators' fixed point cannot hold or that would make float32 training diverge, each with its layer and a
remedy:

* a weight of magnitude :data:`FIXED_POINT_LIMIT` (2**15) or more does not fit EIE's 16-bit codebook entries even
  with no fraction bits, and the k-means codebook and int8 per-channel scale built around it round every other weight
  of the layer (or of its channel) to zero;
* an activation of magnitude :data:`ACTIVATION_LIMIT` (2**32) or more on the data, or one that is not finite in
  float32, makes training diverge: backprop multiplies it into the weight gradients, whose squares (Adam's second
  moment) then overflow float32's 3.4e38, and float32's 24-bit mantissa has long lost every small update.

Activations that are merely large (tabular features in the hundreds) are not an error: the EIE lowering scales them
into its Q8.8 range by calibration (:func:`sparq.compiler.eie.activation_scales`) and int8 calibration scales them
for the systolic array.

:func:`numeric_guard` runs a stage with numpy's overflow, invalid-value and divide-by-zero conditions raised, and
turns them into a :class:`~sparq.compiler.errors.RangeError` naming the stage, so no ``RuntimeWarning`` reaches the
user's terminal.
"""

from contextlib import contextmanager

import numpy as np

from .errors import RangeError
from .ir import trace

__all__ = ["FIXED_POINT_LIMIT", "ACTIVATION_LIMIT", "range_problems", "check_ranges", "numeric_guard"]

FIXED_POINT_LIMIT = 2.0 ** 15
"""Weights at or beyond this magnitude fit no 16-bit EIE codebook entry (Q15.0 at best)."""

ACTIVATION_LIMIT = 2.0 ** 32
"""Activations at or beyond this magnitude make float32 training diverge (see the module docstring)."""

RESCALE = ("rescale the layer (divide its weight and bias by a power of two and multiply the next layer's weight by "
           "it: exact for a ReLU network) or clip the outlier; an export that diverged or was corrupted is the usual "
           "cause")


def _weight_problems(layer):
    """The range problems of one weighted layer's own arrays."""
    problems = []
    for what, array in (("weight", layer.weight), ("bias", layer.bias)):
        magnitude = np.abs(array)
        if magnitude.max() >= FIXED_POINT_LIMIT:
            where = tuple(int(i) for i in np.unravel_index(int(magnitude.argmax()), array.shape))
            problems.append(f"layer {layer.name!r}: {what} {array[where]:.4g} at {where} is beyond "
                            f"{FIXED_POINT_LIMIT:g} ({int((magnitude >= FIXED_POINT_LIMIT).sum())} such value(s)): no "
                            f"16-bit fixed-point codebook holds it and weight sharing would round the rest of the "
                            f"layer to zero; {RESCALE}")
    return problems


def range_problems(model, x=None, limit=2048):
    """One line per problem (see the module docstring) of ``model``'s weights and, with inputs ``x`` (at most
    ``limit`` of them are run), of its activations; empty when everything is in range."""
    problems = [p for layer in model.weighted() for p in _weight_problems(layer)]
    if x is None or problems:  # activations of out-of-range weights are out of range too: one report is enough
        return problems
    with np.errstate(all="ignore"):
        values = trace(model, np.asarray(x[:limit], dtype=np.float32))
    for layer, value in zip(model.layers, values[1:]):
        magnitude = np.abs(value.astype(np.float64))
        if not np.isfinite(magnitude).all() or magnitude.max() >= ACTIVATION_LIMIT:
            peak = "not finite in float32" if not np.isfinite(magnitude).all() else f"up to {magnitude.max():.3g}"
            problems.append(f"layer {layer.name!r}: its outputs on the data are {peak} (limit {ACTIVATION_LIMIT:.3g}), "
                            f"so training would diverge (squared float32 gradients overflow); standardise the inputs "
                            f"or {RESCALE}")
            break  # every later layer inherits the problem
    if not np.isfinite(values[0]).all():
        problems.append("the inputs hold NaN or infinite values; clean the data")
    return problems


def check_ranges(model, x=None, what="compression"):
    """Raise one :class:`RangeError` listing every :func:`range_problems` line, before ``what`` starts."""
    problems = range_problems(model, x)
    if problems:
        raise RangeError(f"{len(problems)} range problem(s) stop the {what} before it starts: " + "; ".join(problems))


@contextmanager
def numeric_guard(stage):
    """Run the block with numpy's floating-point conditions raised; one becomes a :class:`RangeError` naming
    ``stage`` instead of a ``RuntimeWarning`` on the terminal."""
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            yield
    except FloatingPointError as exc:
        raise RangeError(f"{stage}: numerical {str(exc).split(' encountered')[0].lower()} in float arithmetic: the "
                         f"weights or the data are out of range for float32; check them with "
                         f"sparq.compiler.ranges.range_problems and {RESCALE.split(' or clip')[0]}") from None
