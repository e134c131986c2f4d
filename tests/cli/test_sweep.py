"""``sparq sweep``: a grid of points on a two-worker Dask LocalCluster, points kept and not redone, a failing point
reported without stopping the others, the Pareto front, the plot, the lock, bad grids in one line."""

import json
import subprocess
import sys
import time

import pytest
from sparq_cli import error, run

from sparq.errors import EXIT_BUSY, EXIT_INPUT, InputError
from sparq.sweep import grid, pareto_front, parse_grid, sweep


def _points(out):
    return json.loads((out / "sweep.json").read_text())["points"]


def test_a_two_point_sweep_on_a_two_worker_cluster_and_its_rerun(capsys, tmp_path):
    out = tmp_path / "mac"
    code, stdout, _ = run(capsys, "sweep", "--design", "mac", "--board", "icebreaker", "--param", "a_width=4,8",
                          "--workers", "2", "--out", out)
    assert code == 0, stdout
    points = _points(out)
    assert sorted(p["params"]["a_width"] for p in points) == [4, 8]
    for point in points:
        assert point["fmax_mhz"] > 20 and point["resources"]["LC"]["used"] > 0 and point["limiting_path"]
        assert "/tmp" not in json.dumps(point) and "/work" not in json.dumps(point)  # no machine paths kept
    assert "2 points (0 from earlier runs, 0 failed)" in stdout
    assert (out / "sweep-icebreaker.png").stat().st_size > 1000
    # Again, with one more value: the two points are read back, only the new one runs.
    before = (out / "sweep.json").read_text()
    code, stdout, _ = run(capsys, "sweep", "--design", "mac", "--board", "icebreaker", "--param", "a_width=4,8,6",
                          "--out", out)
    assert code == 0 and "3 points (2 from earlier runs, 0 failed)" in stdout
    kept = {json.dumps(p, sort_keys=True) for p in json.loads(before)["points"]}
    assert kept <= {json.dumps(p, sort_keys=True) for p in _points(out)}


def test_an_edit_to_the_sources_measures_a_point_again(capsys, tmp_path, monkeypatch):
    import sparq.sweep
    out = tmp_path / "mac"
    argv = ("sweep", "--design", "mac", "--board", "icebreaker", "--param", "a_width=4", "--workers", "1", "--out", out)
    assert run(capsys, *argv)[0] == 0
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and "1 points (1 from earlier runs, 0 failed)" in stdout
    monkeypatch.setattr(sparq.sweep, "_source_digest", lambda: "an edited hw/")
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and "1 points (0 from earlier runs, 0 failed)" in stdout
    assert [p["sources"] for p in _points(out)] == ["an edited hw/"]  # the point of the old sources is gone


def test_a_point_routed_with_another_router_is_its_own_point(capsys, tmp_path):
    out = tmp_path / "mac"
    argv = ("sweep", "--design", "mac", "--board", "icebreaker", "--param", "a_width=4", "--workers", "1", "--out", out)
    assert run(capsys, *argv)[0] == 0
    code, stdout, _ = run(capsys, *argv, "--router", "router2")
    assert code == 0 and "1 points (0 from earlier runs, 0 failed)" in stdout and "a_width=4 (router2)" in stdout
    assert sorted(str(p.get("router")) for p in _points(out)) == ["None", "router2"]
    code, stdout, _ = run(capsys, *argv, "--router", "router2", "--pnr-seed", "3")
    assert code == 0 and "1 points (0 from earlier runs, 0 failed)" in stdout
    assert "a_width=4 (router2," in stdout and "seed 3)" in stdout  # the table's cell, wrapped
    assert sorted(str(p.get("pnr_seed")) for p in _points(out)) == ["3", "None", "None"]


def test_a_failing_point_is_reported_and_the_others_finish(capsys, tmp_path):
    out = tmp_path / "mac"
    code, message = error(capsys, "sweep", "--design", "mac", "--board", "icebreaker", "--param", "a_width=8,0",
                          "--out", out)
    assert code == EXIT_INPUT and "1 of 2 points failed" in message and "a_width=0" in message
    assert [p["params"]["a_width"] for p in _points(out)] == [8]  # the failed point is not kept as done


def test_bad_grids_are_one_line(capsys, tmp_path):
    for argv, words in ((["--param", "a_width"], "NAME=V1,V2"), (["--param", "depth=4"], "no parameter depth"),
                        ([], "nothing to sweep"), (["--param", "a_width=4", "--param", "a_width=8"], "twice")):
        code, message = error(capsys, "sweep", "--design", "mac", "--board", "icebreaker", *argv,
                              "--out", tmp_path / "x")
        assert code == EXIT_INPUT and words in message, message
    code, message = error(capsys, "sweep", "--design", "nope", "--board", "icebreaker", "--param", "a=1")
    assert code == EXIT_INPUT and "unknown design" in message


def test_an_unknown_router_or_a_bad_seed_from_the_python_api_is_refused_before_any_point(tmp_path):
    with pytest.raises(InputError, match="unknown nextpnr router 'router9'"):
        sweep("mac", "icebreaker", {"a_width": [4]}, out=tmp_path / "x", router="router9")
    with pytest.raises(InputError, match="placement seed must be an integer"):
        sweep("mac", "icebreaker", {"a_width": [4]}, out=tmp_path / "x", pnr_seed=-2)
    assert not (tmp_path / "x").exists()


def test_a_second_sweep_into_the_same_directory_is_busy(capsys, tmp_path, monkeypatch):
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from sparq.workspace import locked\n"
                               f"with locked({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("SPARQ_LOCK_TIMEOUT", "0")
        start = time.monotonic()
        code, message = error(capsys, "sweep", "--design", "mac", "--board", "icebreaker", "--param", "a_width=4",
                              "--out", out)
        assert code == EXIT_BUSY and "in use by another sparq command" in message
        assert time.monotonic() - start < 30 and not (out / "sweep.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_grid_and_pareto_front():
    assert parse_grid(["n_pe=1,2", "spram=True"]) == {"n_pe": [1, 2], "spram": [True]}
    assert grid({"a": [1, 2], "b": ["x", "y"]}) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"},
                                                    {"a": 2, "b": "y"}]
    row = lambda lut, mmac: {"resources": {"LUT": {"used": lut, "available": 9}}, "mmac_per_s": mmac}  # noqa: E731
    rows = [row(100, 50), row(200, 40), row(150, 80), row(300, 120), row(300, 100), row(120, 50)]
    assert [(r["resources"]["LUT"]["used"], r["mmac_per_s"]) for r in pareto_front(rows)] == [
        (100, 50), (150, 80), (300, 120)]


@pytest.mark.slow
def test_an_eie_point_measures_throughput_on_the_model(capsys, tiny_workspace, tmp_path):
    """An EIE point on the tiny model: lowered for the point, run on the RTL (bit-exact), synthesized with the
    image's memory sizes; MMAC/s = Fmax x useful MACs per RTL cycle."""
    out = tmp_path / "eie"
    code, stdout, _ = run(capsys, "sweep", tiny_workspace / "compressed.npz", "--design", "eie", "--board",
                          "icebreaker", "--param", "n_pe=2", "--param", "pe_counters=False", "--images", "1",
                          "--workers", "1", "--out", out)
    assert code == 0, stdout
    (point,) = _points(out)
    rtl = point["rtl"]
    assert rtl["bit_exact"] and rtl["images"] == 1 and 0 < rtl["useful_macs"] and rtl["cycles"] > 0
    assert point["mmac_per_s"] == pytest.approx(point["fmax_mhz"] * rtl["useful_macs"] / rtl["cycles"])
    assert point["model"]["name"].endswith("compressed.npz") and len(point["model"]["sha256"]) == 64
