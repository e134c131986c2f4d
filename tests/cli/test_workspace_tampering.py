"""Tampering: for every file of a workspace (its top directory, an EIE lowering, a systolic lowering), a flipped
byte, a deletion and an edit are each detected, with exit 3 and one line naming the file, by the next command that
uses it: ``lower`` for the compressed model, the demo's summary and the top directory's record, ``report`` for the
compression report and the simulation results, ``simulate`` and ``synth --image`` for every file of a lowering.

The report's own files (``report/``) are for people: no command reads them back, and ``sparq report`` rewrites them.
"""

import json
import shutil

import numpy as np
import pytest
from sparq_cli import error

from sparq.errors import EXIT_INPUT

EIE_FILES = ["manifest.json", "layers.hex", "codebook.hex", "simulation-golden.json", "sparq.json"] + [
    f"pe{k:03d}_{memory}.hex" for k in range(3) for memory in ("ptr_even", "ptr_odd", "spmat", "bias")]
SYSTOLIC_FILES = ["00_fc1_fc2.npz", "00_fc1_fc2.lst", "simulation-golden.json", "sparq.json"]
TOP_FILES = ["compressed.npz", "compression.json", "sparq.json"]
OPERATIONS = ["flip", "delete", "edit"]


def _edit(path):
    """A change a person could make on purpose, leaving the file well-formed."""
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        if "meta" in data:
            data["meta"]["note"] = "edited"
        elif "config" in data and isinstance(data["config"], dict) and "fifo_depth" in data["config"]:
            data["config"]["fifo_depth"] = 2 * data["config"]["fifo_depth"]
        else:
            data[sorted(data)[0]] = "edited"
        path.write_text(json.dumps(data, indent=1))
    elif path.suffix == ".hex":
        lines = path.read_text().splitlines()
        lines[-1] = ("1" if lines[-1][0] == "0" else "0") + lines[-1][1:]
        path.write_text("\n".join(lines) + "\n")
    elif path.suffix == ".npz":
        with np.load(path) as data:
            arrays = {k: data[k].copy() for k in data.files}
        name = max((k for k in arrays if arrays[k].dtype.kind in "iuf"), key=lambda k: arrays[k].size)
        arrays[name].flat[0] += 1
        np.savez(path, **arrays)
    else:
        path.write_text(path.read_text().replace("MATMUL", "MATMUL ", 1))


def _tamper(path, operation):
    if operation == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif operation == "delete":
        path.unlink()
    else:
        _edit(path)


def _expect_refusal(capsys, argv, path, operation):
    code, message = error(capsys, *argv)
    assert code == EXIT_INPUT, message
    if path.name == "sparq.json" and operation == "delete":
        assert "sparq.json" in message or "not a lowered model" in message, message
    else:
        assert message.startswith(str(path)), message


def _commands(ws, directory, name):
    if directory == "":
        return [["lower", ws / "compressed.npz", "--target", "eie", "--out", ws / "again"]] if name != \
            "compression.json" else [["report", ws]]
    commands = [["simulate", ws / directory, "--images", "1"]]
    if directory == "eie":
        commands.append(["synth", "--design", "eie", "-p", "n_pe=3", "--image", ws / "eie"])
    else:
        commands.append(["synth", "--design", "systolic-board", "-p", "size=4", "--image",
                         ws / "systolic" / "00_fc1_fc2.npz"])
    if name == "simulation-golden.json":
        commands.append(["report", ws])
    return commands


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("directory, name", [("", n) for n in TOP_FILES] + [("eie", n) for n in EIE_FILES]
                         + [("systolic", n) for n in SYSTOLIC_FILES])
def test_a_tampered_file_is_detected_by_the_next_command_that_uses_it(capsys, tiny, directory, name, operation):
    path = tiny / directory / name
    _tamper(path, operation)
    for argv in _commands(tiny, directory, name):
        _expect_refusal(capsys, argv, path, operation)
        assert not (tiny / "again").exists() or not list((tiny / "again").glob("*.hex"))


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_tampered_demo_summary_is_detected(capsys, golden_workspace, tmp_path, operation):
    """The demo's summary sits next to the compressed model; lowering that model checks it too."""
    ws = tmp_path / "demo"
    shutil.copytree(golden_workspace, ws)
    _tamper(ws / "demo.json", operation)
    _expect_refusal(capsys, _commands(ws, "", "compressed.npz")[0], ws / "demo.json", operation)
