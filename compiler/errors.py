"""The errors the compiler raises on bad input.

Every error is a :class:`CompileError`, itself a :class:`ValueError`, and its message names the problem and the way
out. Callers catch :class:`CompileError` to report one line instead of a traceback from deep inside numpy or onnx.
"""

__all__ = ["CompileError", "ModelFormatError", "UnsupportedError", "WeightError", "ConfigError", "ShapeError",
           "DataError", "RangeError"]


class CompileError(ValueError):
    """Base class of every error the compiler raises on bad input."""


class ModelFormatError(CompileError):
    """A model file is unreadable, corrupt, incomplete (a missing initializer) or has a dynamic shape."""


class UnsupportedError(CompileError):
    """A model uses an operator or an attribute the compiler does not handle."""


class WeightError(CompileError):
    """A weight array is unusable: NaN or Inf values, an empty layer, too few distinct values."""


class ConfigError(CompileError):
    """A compression setting is out of range, such as a sparsity outside [0, 1) or an unknown method."""


class ShapeError(CompileError):
    """An array does not have the shape a layer or a model expects."""


class DataError(CompileError):
    """A data file is unreadable, or its arrays are unusable: missing or unknown keys, labels out of range, NaN."""


class RangeError(CompileError):
    """Weights or inputs whose values the accelerators' fixed point or the training cannot represent."""
