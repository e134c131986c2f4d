"""Fixtures of the compiler tests: the digits split, the shipped models and one compressed MLP for the session."""

import pytest

from sparq.compiler.datasets import load_digits_split
from sparq.compiler.models import load_shipped
from sparq.compiler.pipeline import compress_digits_mlp
from sparq.compiler.train import single_threaded_blas


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """Run the compiler tests on one BLAS thread: their matrices are small, and on the shared two-core machine
    BLAS threads spin-waiting for a busy core made them many times slower."""
    with single_threaded_blas():
        yield


@pytest.fixture(scope="session")
def digits():
    """``(x_train, y_train, x_test, y_test)``."""
    return load_digits_split()


@pytest.fixture(scope="session")
def mlp():
    """The shipped digits MLP (read-only: training returns copies)."""
    return load_shipped("digits_mlp")


@pytest.fixture(scope="session")
def cnn():
    """The shipped digits CNN (read-only)."""
    return load_shipped("digits_cnn")


@pytest.fixture(scope="session")
def compressed_mlp():
    """``(CompressedModel, report)`` of the default Deep Compression of the digits MLP, built once."""
    return compress_digits_mlp(bits=4, progress=False)
