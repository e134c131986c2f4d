"""Every row of issue 18's two lists, as a test of the exit code and the message's first words, and the error paths
the workspace record adds. Golden backend only; the one RTL run of programs from disk is at the end.

The table: a changed systolic program (simulate, synth --image); a killed lowering or compression (also every step
of every command: test_workspace_crash.py); two lowerings at once (test_workspace_concurrency.py); fifo_depth edited
in a manifest; lowering again next to a user's file and over a larger configuration; a manifest with 10**8 PEs. The
smaller ones: --config a directory, --out a file, ONNX external data outside its folder, a sparq.json with an extra
key, a manifest file entry that is not an object, a compression.json missing a key, a manifest version "1", an
.onnx renamed .npz, a weight of 1e30 (no numpy warning on the terminal; its range check is the compiler's).
"""

import functools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sparq_cli import error, reseal, run
from workspaces import sparq_child, tiny_mlp

from sparq.errors import EXIT_INPUT
from sparq.workspace import RECORD, load_compressed, read_record

PROGRAM = "00_fc1_fc2_fc3.npz"


@pytest.fixture
def golden(golden_workspace, tmp_path):
    """A copy of the golden demo workspace, the one the issue's rows were found on."""
    shutil.copytree(golden_workspace, tmp_path / "demo")
    return tmp_path / "demo"


def _edit_program(path, change):
    with np.load(path) as data:
        arrays = {k: data[k].copy() for k in data.files}
    change(arrays)
    np.savez(path, **arrays)


def _zero_weights(arrays):
    arrays["weight_words"][:] = 0


def _flip(path, offset=None):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _refused(capsys, words, *argv):
    code, message = error(capsys, *argv)
    assert code == EXIT_INPUT and message.startswith(str(words)), message
    return message


# --- the table ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["edited", "garbled", "deleted"])
def test_a_changed_systolic_program_is_refused_by_simulate(capsys, golden, damage):
    path = golden / "systolic" / PROGRAM
    {"edited": lambda: _edit_program(path, _zero_weights), "garbled": lambda: _flip(path),
     "deleted": path.unlink}[damage]()
    words = f"{path}: missing" if damage == "deleted" else f"{path} has changed since sparq wrote it"
    _refused(capsys, words, "simulate", golden / "systolic")


def test_simulate_runs_the_programs_on_disk(capsys, golden):
    """A program whose weights were zeroed, its record made to agree: simulate runs it (and so predicts badly)
    rather than compiling the model again."""
    assert run(capsys, "simulate", golden / "systolic", "--images", "10")[0] == 0
    assert json.loads((golden / "systolic" / "simulation-golden.json").read_text())["accuracy"] >= 0.9
    _edit_program(golden / "systolic" / PROGRAM, _zero_weights)
    reseal(golden / "systolic")
    assert run(capsys, "simulate", golden / "systolic", "--images", "10")[0] == 0
    assert json.loads((golden / "systolic" / "simulation-golden.json").read_text())["accuracy"] <= 0.3


def test_a_changed_program_is_refused_by_synth(capsys, golden):
    path = golden / "systolic" / PROGRAM
    _edit_program(path, _zero_weights)
    _refused(capsys, f"{path} has changed since sparq wrote it", "synth", "--design", "systolic-board", "-p",
             "size=4", "--image", path)


def test_a_program_for_another_configuration_is_refused_even_when_the_record_agrees(capsys, golden, tmp_path):
    assert run(capsys, "lower", golden / "compressed.npz", "--target", "systolic", "--array", "8", "--batch", "10",
               "--out", tmp_path / "eight")[0] == 0
    path = golden / "systolic" / PROGRAM
    shutil.copy(tmp_path / "eight" / PROGRAM, path)
    reseal(golden / "systolic")
    for argv in (["simulate", golden / "systolic"], ["synth", "--design", "systolic-board", "--image", path]):
        message = _refused(capsys, path, *argv)
        assert "SystolicConfig(rows=8" in message and "sparq.json says" in message


def test_a_lowering_killed_after_the_image_save_leaves_the_old_lowering(capsys, tiny, golden_workspace):
    """Model B (the digits MLP) lowered into model A's directory, killed right after the image save: simulate runs
    A with A's configuration, and the report shows A's simulation result."""
    result, model_a = (tiny / "eie" / "simulation-golden.json").read_text(), read_record(tiny / "eie").meta["model"]
    assert sparq_child(["lower", golden_workspace / "compressed.npz", "--target", "eie", "--pes", "5", "--out",
                        tiny / "eie"], SPARQ_CRASH_AT=1) == -9
    assert run(capsys, "report", tiny)[0] == 0
    assert (tiny / "eie" / "simulation-golden.json").read_text() == result
    code, out, _ = run(capsys, "simulate", tiny / "eie", "--images", "2")
    assert code == 0 and "n_pe=3" in out and read_record(tiny / "eie").meta["model"] == model_a


@functools.cache
def _other_compression(directory):
    """A compression of another small model, made once (quickly: one epoch per stage)."""
    import sparq.compiler.pipeline as pipeline
    from sparq.compiler.datasets import load_digits_split
    from sparq.workspace import load_float
    model = tiny_mlp(Path(directory) / "other.npz", hidden=12, seed=9)
    config = pipeline.DeepCompressionConfig(sparsity={"fc1": 0.8, "fc2": 0.8}, prune_steps=1, prune_epochs=1,
                                            finetune_epochs=1)
    return model, pipeline.compress(load_float(model), load_digits_split(), config, name="other", progress=False)


@pytest.mark.parametrize("step, survivor", [(1, "old"), (4, "new"), (5, "new")])
def test_a_killed_compression_leaves_one_run(capsys, tiny, tmp_path_factory, step, survivor, monkeypatch):
    """compressed.npz and compression.json are one run's: killed after the first is staged (step 1) the old run is
    there; killed at the commit point (step 4) or after compressed.npz alone is in place (step 5), the new one; and
    the report reads that run's table, next to that run's model."""
    import sparq.compiler.pipeline as pipeline
    before = (tiny / "compression.json").read_text()
    model, result = _other_compression(str(tmp_path_factory.getbasetemp()))
    monkeypatch.setattr(pipeline, "compress", lambda *args, **kwargs: result)
    assert sparq_child(["compress", model, "--sparsity", "0.8", "--out", tiny], SPARQ_CRASH_AT=step) == -9
    from sparq.report import collect
    compression = collect(tiny)["compression"]  # what the report reads, checked against the record
    assert (compression["model"] == "other") == (survivor == "new")
    assert ((tiny / "compression.json").read_text() == before) == (survivor == "old")
    assert load_compressed(tiny / "compressed.npz").accuracy == compression["accuracy"]


@pytest.mark.parametrize("resealed", [False, True])
def test_fifo_depth_edited_in_the_manifest(capsys, tiny, resealed):
    manifest = tiny / "eie" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["config"]["fifo_depth"] = 16
    manifest.write_text(json.dumps(data, indent=1))
    if resealed:
        reseal(tiny / "eie")
        message = _refused(capsys, f"{tiny / 'eie'}: manifest.json is for EieConfig(n_pe=3, fifo_depth=16",
                           "simulate", tiny / "eie")
        assert "but sparq.json for EieConfig(n_pe=3, fifo_depth=8" in message
    else:
        _refused(capsys, f"{manifest} has changed since sparq wrote it", "simulate", tiny / "eie")


def test_lowering_again_keeps_a_users_file_and_removes_a_larger_configurations(capsys, tiny):
    out = tiny / "eie"
    (out / "simulation-notes.json").write_text('{"note": "mine"}')
    assert run(capsys, "lower", tiny / "compressed.npz", "--target", "eie", "--pes", "6", "--out", out)[0] == 0
    assert (out / "pe005_spmat.hex").is_file() and not (out / "simulation-golden.json").exists()
    assert run(capsys, "lower", tiny / "compressed.npz", "--target", "eie", "--pes", "4", "--out", out)[0] == 0
    assert sorted(p.name for p in out.glob("pe*_spmat.hex")) == [f"pe{k:03d}_spmat.hex" for k in range(4)]
    assert (out / "simulation-notes.json").read_text() == '{"note": "mine"}'
    assert set(read_record(out).files) == {p.name for p in out.iterdir()} - {RECORD, ".sparq.lock",
                                                                             "simulation-notes.json"}


def test_lowering_again_removes_old_systolic_programs(capsys, tiny, tiny_workspace):
    out = tiny / "systolic"
    cnn = tiny_workspace.parent / "sparq-tiny-models" / "cnn.npz"
    assert run(capsys, "lower", cnn, "--target", "systolic", "--out", out)[0] == 0
    assert sorted(p.name for p in out.glob("*.npz")) == ["00_conv.npz", "01_fc.npz"]
    assert run(capsys, "lower", tiny / "compressed.npz", "--target", "systolic", "--out", out)[0] == 0
    assert sorted(p.name for p in out.glob("*.[nl][ps]*")) == ["00_fc1_fc2.lst", "00_fc1_fc2.npz"]


def _huge_manifest(directory):
    manifest = directory / "manifest.json"
    data = json.loads(manifest.read_text())
    data["config"]["n_pe"] = 10 ** 8
    manifest.write_text(json.dumps(data))


def test_a_manifest_with_a_hundred_million_pes_is_refused_at_once(capsys, tiny, tmp_path):
    standalone = tmp_path / "image"  # an image directory on its own, as synth --image takes it
    shutil.copytree(tiny / "eie", standalone, ignore=shutil.ignore_patterns("sparq.json", ".sparq.lock"))
    _huge_manifest(standalone)
    _huge_manifest(tiny / "eie")
    reseal(tiny / "eie")
    for words, argv in ((f"{standalone}/manifest.json: EieConfig.n_pe=100000000 is over sparq's limit",
                         ["synth", "--design", "eie", "--image", standalone]),
                        (f"{tiny / 'eie'}/manifest.json: EieConfig.n_pe=100000000 is over sparq's limit",
                         ["simulate", tiny / "eie"])):
        started = time.perf_counter()
        _refused(capsys, words, *argv)
        assert time.perf_counter() - started < 1.0


# --- the smaller ones -------------------------------------------------------------------------------------------

def test_a_config_that_is_a_directory(capsys, tiny, tmp_path):
    _refused(capsys, f"{tmp_path}: a directory, not a TOML config file", "lower", tiny / "compressed.npz",
             "--target", "eie", "--config", tmp_path, "--out", tmp_path / "eie")


@pytest.mark.parametrize("command", ["compress", "lower", "report"])
def test_an_out_that_is_a_file(capsys, tiny, tmp_path, command):
    out = tmp_path / "a-file"
    out.write_text("mine")
    argv = {"compress": ["compress", tiny_mlp(tmp_path / "m.npz"), "--sparsity", "0.5"],
            "lower": ["lower", tiny / "compressed.npz", "--target", "eie"], "report": ["report", tiny]}[command]
    _refused(capsys, f"{out} is a file, not a directory", *argv, "--out", out)
    assert out.read_text() == "mine"


def test_onnx_external_data_outside_its_folder(capsys, tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    weight = numpy_helper.from_array(np.ones((64, 10), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [weight])
    (tmp_path / "model").mkdir()
    path = tmp_path / "model" / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path),
              save_as_external_data=True, location="w.bin", size_threshold=0)
    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../outside.bin"
    onnx.save(proto, str(path))
    message = _refused(capsys, f"{path}: its external data cannot be read", "lower", path, "--target", "systolic",
                       "--out", tmp_path / "out")
    assert "internal error" not in message


@pytest.mark.parametrize("where, words", [
    ("edited", "sparq.json: edited since sparq wrote it"),
    ("meta", "sparq.json: not a record of a eie lowering (keys extra wrong or unexpected)"),
    ("config", "sparq.json: its configuration is not a EieConfig"),
    ("top", "sparq.json: a record with the keys"),
])
def test_a_record_with_an_extra_key(capsys, tiny, where, words):
    path = tiny / "eie" / RECORD
    data = json.loads(path.read_text())
    if where == "top":
        data["extra"] = 1
        path.write_text(json.dumps(data))
        from sparq.workspace import record_checksum
        data["sha256"] = record_checksum(data)
        path.write_text(json.dumps(data))
    elif where == "edited":
        data["meta"]["extra"] = 1
        path.write_text(json.dumps(data))
    else:
        meta = data["meta"]
        (meta if where == "meta" else meta["config"])["extra"] = 1
        reseal(tiny / "eie", meta)
    _refused(capsys, f"{tiny / 'eie'}/{words}", "simulate", tiny / "eie")


def test_a_manifest_file_entry_that_is_not_an_object(capsys, tiny):
    manifest = tiny / "eie" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"]["layers.hex"] = 3
    manifest.write_text(json.dumps(data))
    reseal(tiny / "eie")
    _refused(capsys, f"{tiny / 'eie'}/manifest.json: the entry of layers.hex is 3, not an object", "simulate",
             tiny / "eie")


@pytest.mark.parametrize("resealed", [False, True])
def test_a_compression_report_missing_a_key(capsys, tiny, resealed):
    path = tiny / "compression.json"
    data = json.loads(path.read_text())
    del data["total"]
    path.write_text(json.dumps(data))
    if resealed:
        reseal(tiny)
        message = _refused(capsys, f"{path}: not a compression report this sparq reads", "report", tiny)
        assert "'total'" in message
    else:
        _refused(capsys, f"{path} has changed since sparq wrote it", "report", tiny)


def test_a_manifest_version_given_as_text(capsys, tiny):
    manifest = tiny / "eie" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["version"] = "1"
    manifest.write_text(json.dumps(data))
    reseal(tiny / "eie")
    _refused(capsys, f"{tiny / 'eie'}: image format version '1' but this sparq reads version 1", "simulate",
             tiny / "eie")


@pytest.mark.parametrize("command", ["compress", "lower", "synth"])
def test_an_onnx_model_renamed_npz(capsys, tmp_path, command):
    from sparq.compiler.models import shipped_path
    path = tmp_path / "model.npz"
    shutil.copy(shipped_path("digits_mlp"), path)
    argv = {"compress": ["compress", path, "--sparsity", "0.5", "--out", tmp_path / "ws"],
            "lower": ["lower", path, "--target", "systolic", "--out", tmp_path / "sys"],
            "synth": ["synth", "--design", "systolic-board", "--image", path]}[command]
    words = f"{path}: not a systolic program file" if command == "synth" else f"{path}: not an .npz archive (it " \
        "looks like an ONNX model)"
    message = _refused(capsys, words, *argv)
    assert "allow_pickle" not in message and "unsafely" not in message


def test_a_weight_out_of_range_is_refused_before_any_work(tmp_path):
    """A weight of 1e30 (it once compressed with a leaked numpy RuntimeWarning and 70 % accuracy) is refused with one
    line naming the layer, before any work, and no numpy warning reaches the terminal. A real process: pytest records
    warnings."""
    from sparq.compiler.ir import Dense, Model, Relu
    from sparq.compiler.npz_io import write_npz
    rng = np.random.default_rng(0)
    weight = rng.normal(0, .3, (10, 16)).astype(np.float32)
    weight[0, 0] = 1e30
    write_npz(Model([Dense("fc1", rng.normal(0, .3, (16, 64)).astype(np.float32), np.zeros(16, np.float32)),
                     Relu("relu1"), Dense("fc2", weight, np.zeros(10, np.float32))], (64,)), tmp_path / "huge.npz")
    done = subprocess.run([sys.executable, "-m", "sparq", "compress", tmp_path / "huge.npz", "--sparsity", "0.5",
                           "--out", tmp_path / "ws"], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("sparq compress: error: 1 range problem(s) stop the compression before it starts: "
                                  "layer 'fc2': weight 1e+30"), done.stderr
    assert "RuntimeWarning" not in done.stdout + done.stderr
    assert not (tmp_path / "ws" / "compressed.npz").exists()


# --- what the record adds -----------------------------------------------------------------------------------------

def test_a_lowering_of_an_older_sparq(capsys, tiny):
    path = tiny / "eie" / RECORD
    path.write_text(json.dumps({"target": "eie", "model": "x", "model_sha256": "0" * 64, "config": {}}))
    _refused(capsys, f"{path}: written by an older sparq", "simulate", tiny / "eie")
    _refused(capsys, f"{path}: written by an older sparq", "lower", tiny / "compressed.npz", "--target", "eie",
             "--out", tiny / "eie")


def test_each_command_keeps_to_its_own_directory(capsys, tiny):
    _refused(capsys, f"{tiny} holds what `sparq compress` writes, not what `sparq lower` writes", "lower",
             tiny / "compressed.npz", "--target", "eie", "--out", tiny)
    _refused(capsys, f"{tiny / 'eie'} holds what `sparq lower` writes, not what `sparq compress` writes",
             "compress", tiny_mlp(tiny / "m.npz"), "--sparsity", "0.5", "--out", tiny / "eie")
    _refused(capsys, f"{tiny / 'eie'} holds the output of one step, not a workspace", "report", tiny / "eie")


def test_a_file_sparq_did_not_write_is_not_overwritten(capsys, tiny, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "manifest.json").write_text("my own manifest")
    _refused(capsys, f"{out / 'manifest.json'} exists and sparq did not write it", "lower",
             tiny / "compressed.npz", "--target", "eie", "--out", out)
    assert (out / "manifest.json").read_text() == "my own manifest"
    assert sorted(p.name for p in out.iterdir()) == [".sparq.lock", "manifest.json"]


def test_a_simulation_result_of_another_lowering(capsys, tiny):
    shutil.copy(tiny / "systolic" / "simulation-golden.json", tiny / "eie" / "simulation-golden.json")
    reseal(tiny / "eie")
    _refused(capsys, f"{tiny / 'eie' / 'simulation-golden.json'}: a simulation of systolic", "report", tiny)


def test_a_lost_record(capsys, tiny):
    (tiny / RECORD).unlink()
    _refused(capsys, f"{tiny / 'compressed.npz'}: in a directory sparq writes, but no sparq.json there lists it",
             "lower", tiny / "compressed.npz", "--target", "eie", "--out", tiny / "again")
    _refused(capsys, f"{tiny / 'compression.json'}: no sparq.json in {tiny} lists it", "report", tiny)
    (tiny / "eie" / RECORD).unlink()
    _refused(capsys, f"{tiny / 'eie'}: sparq wrote it, but its sparq.json is missing", "synth", "--design", "eie",
             "--image", tiny / "eie")


def test_a_simulation_does_not_write_into_a_directory_lowered_again_meanwhile(capsys, tiny):
    from sparq.flow import load_lowered
    from sparq.simulation import simulate
    lowered = load_lowered(tiny / "eie")
    assert run(capsys, "lower", tiny / "compressed.npz", "--target", "eie", "--pes", "2", "--out", tiny / "eie")[0] == 0
    with pytest.raises(Exception, match="was written by another sparq command while this one ran"):
        simulate(lowered, "golden", images=2)
    assert read_record(tiny / "eie").meta["config"]["n_pe"] == 2 and not (tiny / "eie" / "simulation-golden.json"
                                                                            ).exists()
