"""Shared set-up of the ``sparq`` command tests: one golden-backend demo workspace for the whole session.

Under pytest-xdist every worker would build its own; a file lock in the session's shared temporary directory makes
the first worker build it and the others reuse it.
"""

import fcntl
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers: chromium.py, sparq_cli.py

from sparq.cli import main  # noqa: E402


@pytest.fixture(scope="session")
def golden_workspace(tmp_path_factory):
    """A workspace after ``sparq demo --backend golden --images 10``: compressed model, both lowered directories,
    their golden simulations and the report."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the xdist workers of this session (and only of this session)
    workspace = root / "sparq-golden-demo"
    with open(root / "sparq-golden-demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (workspace / "report" / "index.html").is_file():
            assert main(["demo", "--backend", "golden", "--images", "10", "--out", str(workspace)]) == 0
    return workspace
