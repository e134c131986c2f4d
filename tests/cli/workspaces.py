"""Helpers of the workspace-integrity tests: small models that compress and lower in a fraction of a second, the
``sparq`` command run in a forked child (so that it can be killed without killing the test, and starts without
re-importing anything), and a directory's state as the tests compare it."""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from sparq import workspace
from sparq.cli import main
from sparq.workspace import COMMIT, LOCK, RECORD, STAGING, opened

__all__ = ["tiny_mlp", "tiny_cnn", "sparq_child", "exit_code", "state", "restore"]


def tiny_mlp(path, hidden=16, seed=0):
    """A 64-``hidden``-10 MLP as an ``.npz`` model."""
    from sparq.compiler.ir import Dense, Model, Relu
    from sparq.compiler.npz_io import write_npz
    rng = np.random.default_rng(seed)
    write_npz(Model([Dense("fc1", rng.normal(0, .3, (hidden, 64)).astype(np.float32), np.zeros(hidden, np.float32)),
                     Relu("relu1"), Dense("fc2", rng.normal(0, .3, (10, hidden)).astype(np.float32),
                                          np.zeros(10, np.float32))], (64,)), path)
    return Path(path)


def tiny_cnn(path, seed=1):
    """A one-convolution CNN on the digits' 8x8 pixels: two device steps on the systolic array."""
    from sparq.compiler.ir import Conv, Dense, Flatten, Model, Relu, Reshape
    from sparq.compiler.npz_io import write_npz
    rng = np.random.default_rng(seed)
    write_npz(Model([Reshape("reshape", (1, 8, 8)), Conv("conv", rng.normal(0, .3, (2, 1, 3, 3)).astype(np.float32),
                                                          np.zeros(2, np.float32)), Relu("relu"), Flatten("flatten"),
                     Dense("fc", rng.normal(0, .1, (10, 72)).astype(np.float32), np.zeros(10, np.float32))], (64,)),
              path)
    return Path(path)


def sparq_child(argv, *, output=None, start=None, wait=True, **env):
    """Run ``sparq *argv`` in a forked child with ``env`` added to its environment; return its exit code, or minus
    the signal that killed it. ``output``: a file for the child's stdout and stderr; ``start``: a pipe's read end
    the child waits on before it starts; ``wait=False`` returns the child's pid at once (see :func:`exit_code`)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            if output is not None:
                fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                sys.stdout = sys.stderr = open(fd, "w", buffering=1)  # pytest's capture is no longer the output
            if start is not None:
                os.read(start, 1)
            os.environ.update({k: str(v) for k, v in env.items()})
            workspace._steps[0] = 0  # the step count of the crash hook starts with the command, as in a new process
            code = main([str(a) for a in argv])
        finally:
            os._exit(code)
    return exit_code(pid) if wait else pid


def exit_code(pid):
    """Wait for the child ``pid``; its exit code, or minus the signal that killed it."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _fingerprint(path):
    """What identifies a file's content across runs of one command: its SHA-256, the arrays of an ``.npz`` (zip
    members carry the time they were written), a simulation result without its wall-clock times."""
    if path.suffix == ".npz":
        digest = hashlib.sha256()
        with np.load(path) as data:
            for key in sorted(data.files):
                digest.update(key.encode() + str(data[key].dtype).encode() + str(data[key].shape).encode())
                digest.update(np.ascontiguousarray(data[key]).tobytes())
        return digest.hexdigest()
    if path.name.startswith("simulation-"):
        return {k: v for k, v in json.loads(path.read_text()).items() if k not in ("seconds", "build_seconds")}
    if path.name == RECORD:
        record = json.loads(path.read_text())
        return record["kind"], record["meta"], sorted(record["files"])
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(directory, user_files=()):
    """The state of ``directory`` as a reader sees it: opened (a killed command's write completed or removed), its
    record and every file it lists verified, nothing on disk but the record's files and ``user_files``, and the
    fingerprint of each file."""
    directory = Path(directory)
    with opened(directory) as (record,):
        pass
    assert not (directory / STAGING).exists() and not (directory / COMMIT).exists()
    names = {p.name for p in directory.iterdir() if p.is_file() and p.name != LOCK}
    listed = set(record.files) | {RECORD} if record is not None else set()
    assert names == listed | set(user_files), (sorted(names), sorted(listed))
    return {name: _fingerprint(directory / name) for name in sorted(names)}


def restore(saved, directory):
    """Put the copy ``saved`` back as ``directory``."""
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(saved, directory)
