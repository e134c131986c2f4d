"""The data a flow runs on: the training split that compression retrains on and the systolic lowering calibrates
on, and the test split that ``sparq simulate`` takes its images from.

Every step takes a :class:`Dataset` as a parameter (``data=``); without one it is :func:`digits`, the bundled digits
split the shipped models were trained on (:func:`sparq.compiler.datasets.load_digits_split`, no download).
"""

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["Dataset", "digits"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training and a test split: ``x_*`` float32 of shape ``(n, features)``, ``y_*`` int labels. For messages:
    ``name`` ("digits"), ``description`` ("the bundled digits data") and ``input_note``, what one input is."""

    name: str
    description: str
    input_note: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def split(self):
        """``(x_train, y_train, x_test, y_test)``, as :func:`sparq.compiler.pipeline.compress` takes it."""
        return self.x_train, self.y_train, self.x_test, self.y_test

    def check_input(self, model, path):
        """Refuse ``model`` (read from ``path``) when it does not take this data's inputs."""
        features = self.x_train.shape[1:]
        if tuple(model.input_shape) != features:
            size = int(np.prod(features))
            raise InputError(f"{path}: the model takes input shape {tuple(model.input_shape)}, but sparq retrains, "
                             f"calibrates and tests on {self.description} ({size} pixels per image)",
                             f"export a model with a flat {size}-value input ({self.input_note})")

    def test(self, images):
        """The first ``images`` test inputs and labels; a count outside the split is an :class:`InputError`."""
        if not 1 <= images <= len(self.x_test):
            raise InputError(f"--images {images} is outside 1..{len(self.x_test)}", f"the {self.name} test split has "
                             f"{len(self.x_test)} images")
        return self.x_test[:images], self.y_test[:images]


def digits():
    """scikit-learn's digits, split once and for all (1,257 training and 540 test images of 64 pixels)."""
    from sparq.compiler.datasets import load_digits_split
    return Dataset("digits", "the bundled digits data", "the digits' 8x8 pixels, scaled to [0, 1]",
                   *load_digits_split())
