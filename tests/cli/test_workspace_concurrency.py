"""Two commands on one workspace directory at once: the second waits for the first (saying so) or, past
``SPARQ_LOCK_TIMEOUT``, refuses with one line and exit code 7; two lowerings into one directory, started together
and repeated, always leave exactly one of them."""

import os
import time

from sparq_cli import run
from workspaces import exit_code, sparq_child, state

from sparq.errors import EXIT_BUSY
from sparq.workspace import opened

ROUNDS = 8


def test_two_lowerings_at_once_never_mix(capsys, tiny, tmp_path):
    """Each round starts a 2-PE and a 3-PE lowering of one model into one directory at the same moment, each step
    of their writes slowed down so that they overlap; both succeed, one after the other, and the directory is
    exactly what one of them writes alone."""
    lowerings = {pes: ["lower", tiny / "compressed.npz", "--target", "eie", "--pes", pes] for pes in (2, 3)}
    alone = {}
    for pes, argv in lowerings.items():
        assert run(capsys, *argv, "--out", tmp_path / f"alone{pes}")[0] == 0
        alone[pes] = state(tmp_path / f"alone{pes}")
    out, waited = tiny / "together", 0
    for round_ in range(ROUNDS):
        start_read, start_write = os.pipe()
        logs = {pes: tmp_path / f"round{round_}-{pes}.log" for pes in lowerings}
        children = [sparq_child([*argv, "--out", out], output=logs[pes], start=start_read, wait=False,
                                SPARQ_STEP_DELAY=0.01) for pes, argv in lowerings.items()]
        os.write(start_write, b"go")
        assert [exit_code(pid) for pid in children] == [0, 0], [log.read_text()[-500:] for log in logs.values()]
        os.close(start_read)
        os.close(start_write)
        assert state(out) in alone.values(), f"round {round_}: a mixed directory"
        waited += sum("sparq: waiting: " in log.read_text() for log in logs.values())
    assert waited > 0  # the writes did overlap: one command waited for the other


def _hold(directory, seconds, ready):
    """A child that holds ``directory``'s exclusive lock for ``seconds`` (it writes to ``ready`` once it has it)."""
    pid = os.fork()
    if pid == 0:
        try:
            with opened(directory, exclusive=True):
                os.write(ready, b"1")
                time.sleep(seconds)
        finally:
            os._exit(0)
    return pid


def _lines(err):
    return err.strip().splitlines()


def test_the_second_command_waits_for_the_first(capsys, tiny):
    ready_read, ready_write = os.pipe()
    holder = _hold(tiny / "eie", 1.0, ready_write)
    os.read(ready_read, 1)
    started = time.perf_counter()
    code, _, err = run(capsys, "simulate", tiny / "eie", "--images", "1")
    assert code == 0 and time.perf_counter() - started > 0.5
    assert _lines(err) == [f"sparq: waiting: {tiny / 'eie'} is in use by another sparq command"]
    assert exit_code(holder) == 0


def test_a_busy_directory_is_refused_after_the_timeout(capsys, tiny, monkeypatch):
    ready_read, ready_write = os.pipe()
    holder = _hold(tiny / "eie", 3.0, ready_write)
    os.read(ready_read, 1)
    monkeypatch.setenv("SPARQ_LOCK_TIMEOUT", "0.3")
    code, _, err = run(capsys, "lower", tiny / "compressed.npz", "--target", "eie", "--out", tiny / "eie")
    waiting, message, hint = _lines(err)
    assert code == EXIT_BUSY and waiting.startswith("sparq: waiting: ")
    assert message == f"sparq lower: error: {tiny / 'eie'} is in use by another sparq command (waited 0.3 s)"
    assert hint.startswith("hint: wait for it to finish")
    monkeypatch.setenv("SPARQ_LOCK_TIMEOUT", "0")
    code, _, err = run(capsys, "report", tiny)
    assert code == EXIT_BUSY and _lines(err)[0].startswith(f"sparq report: error: {tiny / 'eie'} is in use")
    assert exit_code(holder) == 0
