"""Shared set-up of the ``sparq`` command tests: one golden-backend demo workspace and one small workspace (tiny
models, every step done) for the whole session.

Under pytest-xdist every worker would build its own; a file lock in the session's shared temporary directory makes
the first worker build each and the others reuse it.
"""

import fcntl
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers: chromium.py, sparq_cli.py, workspaces.py

from workspaces import tiny_cnn, tiny_mlp  # noqa: E402

from sparq.cli import main  # noqa: E402


def _shared(tmp_path_factory, name):
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the xdist workers of this session (and only of this session)
    return root / name, root / f"{name}.lock"


@pytest.fixture(scope="session")
def golden_workspace(tmp_path_factory):
    """A workspace after ``sparq demo --backend golden --images 10``: compressed model, both lowered directories,
    their golden simulations and the report."""
    workspace, lock_path = _shared(tmp_path_factory, "sparq-golden-demo")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (workspace / "report" / "index.html").is_file():
            assert main(["demo", "--backend", "golden", "--images", "10", "--out", str(workspace)]) == 0
    return workspace


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory):
    """A workspace of a 64-16-10 MLP (``models/tiny.npz``, pruned to half) after every step: compressed, lowered to
    EIE (3 PEs) and to the systolic array (4 images per call), both simulated on the golden model (2 images), and
    the report. ``models/`` also holds ``cnn.npz`` (:func:`workspaces.tiny_cnn`). Copy it before changing it."""
    workspace, lock_path = _shared(tmp_path_factory, "sparq-tiny")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (workspace / "report" / "index.html").is_file():
            models = workspace.parent / "sparq-tiny-models"
            models.mkdir(exist_ok=True)
            tiny_mlp(models / "tiny.npz")
            tiny_cnn(models / "cnn.npz")
            steps = [["compress", models / "tiny.npz", "--sparsity", "0.5", "--out", workspace],
                     ["lower", workspace / "compressed.npz", "--target", "eie", "--pes", "3"],
                     ["lower", workspace / "compressed.npz", "--target", "systolic", "--batch", "4"],
                     ["simulate", workspace / "eie", "--images", "2"],
                     ["simulate", workspace / "systolic", "--images", "2"], ["report", workspace]]
            for argv in steps:
                assert main([str(a) for a in argv]) == 0, argv
    return workspace


@pytest.fixture
def tiny(tiny_workspace, tmp_path):
    """A copy of :func:`tiny_workspace` to change (its lowerings' records name the original's compressed.npz)."""
    shutil.copytree(tiny_workspace, tmp_path / "ws")
    return tmp_path / "ws"
