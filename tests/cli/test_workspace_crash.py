"""Crash injection: each command that writes (compress, lower for both targets, simulate, report) is killed with
SIGKILL at every step of its write sequence (``SPARQ_CRASH_AT``, :mod:`sparq.workspace`), over a directory that
holds an earlier run; the directory then reads back as entirely the old run or entirely the new one, usable, and a
user's file in it untouched.

Each command runs in a forked child (:func:`workspaces.sparq_child`); the steps are counted by one complete run
(``SPARQ_CRASH_STEPS``), which also gives the new state.
"""

import os
import shutil
import subprocess
import sys

import pytest
from workspaces import restore, sparq_child, state, tiny_mlp

from sparq.flow import load_lowered
from sparq.workspace import load_compressed, load_float, writing

USER_FILE = "simulation-notes.json"


def _crash_every_step(directory, argv, usable, tmp_path, *, expect_steps=()):
    """Kill ``sparq argv`` at each step of its writes into ``directory`` (which holds the old run and a user's file);
    check each time that a reader sees the old or the new run and that ``usable(directory)`` works. Returns the
    number of crash points."""
    (directory / USER_FILE).write_text('{"mine": true}\n')
    saved = tmp_path / "saved"
    shutil.copytree(directory, saved)
    old = state(directory, {USER_FILE})
    log = tmp_path / "steps.log"
    assert sparq_child(argv, SPARQ_CRASH_STEPS=log) == 0
    new = state(directory, {USER_FILE})
    assert new != old
    steps = log.read_text().splitlines()
    for expected in ("staged", "committed", "replaced sparq.json", "done", *expect_steps):
        assert any(line.split(" ", 1)[1] == expected for line in steps), (expected, steps)
    seen = set()
    for k in range(1, len(steps) + 1):
        restore(saved, directory)
        assert sparq_child(argv, SPARQ_CRASH_AT=k) == -9, f"not killed at step {k}: {steps[k - 1]}"
        after = state(directory, {USER_FILE})
        assert after in (old, new), f"a mixed workspace after a kill at step {steps[k - 1]}"
        seen.add("old" if after == old else "new")
        usable(directory)
        assert (directory / USER_FILE).read_text() == '{"mine": true}\n'
    assert seen == {"old", "new"}  # killed before the commit point: the old run; after it: the new one
    print(f"{argv[0]} {' '.join(str(a) for a in argv[1:] if str(a).startswith('--'))}: {len(steps)} crash points")
    return len(steps)


def test_compress_killed_at_every_step(tiny, tmp_path, monkeypatch):
    """The new run compresses another model; compress itself is the part under test, so its retraining is done
    once, here (the children inherit the patched function)."""
    import sparq.compiler.pipeline as pipeline
    from sparq.compiler.datasets import load_digits_split
    with writing(tiny, "compressed", keep=True) as transaction:  # a demo summary, which the new run must delete
        transaction.write_text("demo.json", "{}\n")
    model = tiny_mlp(tmp_path / "other.npz", hidden=12, seed=7)
    config = pipeline.DeepCompressionConfig(sparsity={"fc1": 0.7, "fc2": 0.7}, prune_steps=1, prune_epochs=1,
                                            finetune_epochs=1)
    result = pipeline.compress(load_float(model), load_digits_split(), config, name="other", progress=False)
    monkeypatch.setattr(pipeline, "compress", lambda *args, **kwargs: result)
    _crash_every_step(tiny, ["compress", model, "--sparsity", "0.7", "--out", tiny],
                      lambda d: load_compressed(d / "compressed.npz"), tmp_path, expect_steps=["deleted demo.json"])


def test_eie_lower_killed_at_every_step(tiny, tmp_path):
    """3 PEs before, 2 after: the third PE's files are deleted in the new run's sequence."""
    _crash_every_step(tiny / "eie", ["lower", tiny / "compressed.npz", "--target", "eie", "--pes", "2", "--out",
                                     tiny / "eie"], load_lowered, tmp_path,
                      expect_steps=["deleted pe002_spmat.hex", "deleted simulation-golden.json"])


def test_systolic_lower_killed_at_every_step(tiny, tiny_workspace, tmp_path):
    """A CNN's two programs before, the MLP's one after: the CNN's programs are deleted in the new run's sequence."""
    out = tiny / "systolic"
    cnn = tiny_workspace.parent / "sparq-tiny-models" / "cnn.npz"
    assert sparq_child(["lower", cnn, "--target", "systolic", "--batch", "2", "--out", out]) == 0
    _crash_every_step(out, ["lower", tiny / "compressed.npz", "--target", "systolic", "--batch", "3", "--out", out],
                      load_lowered, tmp_path, expect_steps=["deleted 00_conv.npz", "deleted 01_fc.lst"])


@pytest.mark.parametrize("target", ["eie", "systolic"])
def test_simulate_killed_at_every_step(tiny, tmp_path, target):
    _crash_every_step(tiny / target, ["simulate", tiny / target, "--images", "3"], load_lowered, tmp_path)


def test_report_killed_at_every_step(tiny, tmp_path):
    """The old report has every section; the new one, of a workspace with only the compression table, has one plot:
    the old plots are deleted in the new run's sequence."""
    compressed_only = tmp_path / "compressed-only"
    compressed_only.mkdir()
    for name in ("compressed.npz", "compression.json", "sparq.json"):
        shutil.copy(tiny / name, compressed_only / name)
    _crash_every_step(tiny / "report", ["report", compressed_only, "--out", tiny / "report"], lambda d: None,
                      tmp_path, expect_steps=["deleted roofline.png", "deleted eie_load_balance.png"])


def test_a_killed_process_is_recovered_by_the_next_command(tiny):
    """The hook in a real process (not a fork): killed after the commit point, the next command finishes the
    lowering; killed before, it is as if the command never ran."""
    argv = [sys.executable, "-m", "sparq", "lower", tiny / "compressed.npz", "--target", "eie", "--pes", "2",
            "--out", tiny / "eie"]
    before = state(tiny / "eie")
    assert subprocess.run(argv, env={**os.environ, "SPARQ_CRASH_AT": "1"}, capture_output=True).returncode == -9
    assert state(tiny / "eie") == before and load_lowered(tiny / "eie").config.n_pe == 3
    assert subprocess.run(argv, env={**os.environ, "SPARQ_CRASH_AT": "3"}, capture_output=True).returncode == -9
    assert (tiny / "eie" / ".sparq-commit").is_dir()  # committed, not applied: the next command completes it
    assert load_lowered(tiny / "eie").config.n_pe == 2
    assert not (tiny / "eie" / "pe002_spmat.hex").exists()
