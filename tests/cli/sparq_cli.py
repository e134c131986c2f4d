"""Running the ``sparq`` command in-process from the tests, and editing a workspace the way a careful forger would."""

import json
from pathlib import Path

from sparq.cli import main
from sparq.workspace import RECORD, record_checksum, sha256

__all__ = ["run", "error", "reseal", "EIE_RTL", "SYSTOLIC_RTL", "flags"]

EIE_RTL = dict(n_pe=4, fifo_depth=8, ptr_depth=1024, spmat_depth=1024, act_depth=128, bias_depth=256, max_layers=4)
"""``CONFIG4`` of tests/eie_rtl/conftest.py, the default suite's EIE build (at -O2): RTL runs from the command line
and the API use it, so that they build nothing new."""
SYSTOLIC_RTL = dict(rows=8, cols=8, ub_depth=4096, wb_depth=8192, acc_depth=512)
"""``sparq.sim.systolic.stimulus.config_for(8)``, the systolic network tests' build (at -O0)."""


def flags(fields):
    """``-p NAME=VALUE`` flags of ``sparq lower`` for ``fields``."""
    return [item for name, value in fields.items() for item in ("-p", f"{name}={value}")]


def run(capsys, *argv):
    """Run ``sparq *argv``; return ``(exit code, stdout, stderr)``."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error(capsys, *argv):
    """Run ``sparq *argv``, which must fail with one error line and one hint (and nothing else on stderr); return
    ``(exit code, the error's message)``."""
    code, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 2, err
    assert lines[0].startswith(f"sparq {argv[0]}: error: ") and lines[1].startswith("hint: "), err
    return code, lines[0].split(": error: ", 1)[1]


def reseal(directory, meta=None):
    """Make ``directory``'s record agree with its files as they are now (their sizes and SHA-256s, and its own
    checksum), with ``meta`` changed if given: what it takes to get an edited file past the record, so that a test
    reaches the checks behind it."""
    path = Path(directory) / RECORD
    record = json.loads(path.read_text())
    record["meta"] = record["meta"] if meta is None else meta
    record["files"] = {name: {"sha256": sha256(Path(directory) / name), "bytes": (Path(directory) / name).stat()
                              .st_size} for name in record["files"] if (Path(directory) / name).is_file()}
    record["sha256"] = record_checksum(record)
    path.write_text(json.dumps(record))
