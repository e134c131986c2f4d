"""``sparq demo`` as ``make demo`` runs it: both RTLs under Verilator, 20 images, every output bit-exact with the
golden models (checked inside the testbench bodies), then the report. Minutes of builds and simulation: slow."""

import json

import pytest
from chromium import chromium_path, inspect_page

from sparq.cli import main


@pytest.mark.slow
def test_demo_on_both_rtls(tmp_path):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    for target in ("eie", "systolic"):
        rtl = json.loads((tmp_path / target / "simulation-rtl.json").read_text())
        assert rtl["backend"] == "rtl" and rtl["images"] == 20
        assert rtl["accuracy"] >= rtl["float_accuracy"] - 0.05
        assert rtl["counter_source"] == "RTL performance counters"
    eie = json.loads((tmp_path / "eie" / "simulation-rtl.json").read_text())
    assert abs(eie["compute_cycles"] - eie["model_cycles"]) <= 0.05 * eie["model_cycles"]
    if chromium_path() is not None:
        page = inspect_page(tmp_path / "report" / "index.html")
        assert page["errors"] == [] and len(page["images"]) == 6
        assert all(image["width"] > 0 for image in page["images"])
