"""``sparq synth`` argument handling and the design registry: every bad input gets one error naming the way out.

None of these runs a tool: the errors are raised before synthesis starts.
"""

import argparse

import pytest

from sparq.fpga.build import BOARDS, get_board, synthesize
from sparq.fpga.cli import add_synth_command
from sparq.fpga.designs import DESIGNS, make_design, parse_param
from sparq.hw.common.mac import MACCell


def _run(*argv):
    parser = argparse.ArgumentParser(prog="sparq")
    add_synth_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["synth", *argv])
    return args.run(args)


def test_list_names_designs_and_boards(capsys):
    assert _run("--list") == 0
    out = capsys.readouterr().out
    for name in [*DESIGNS, *BOARDS]:
        assert name in out


@pytest.mark.parametrize("argv, message", [
    ((), "no design given; pass --design"),
    (("--design", "nope"), "unknown design 'nope'; known designs: mac, fifo"),
    (("--design", "mac", "--board", "de0"), "unknown board 'de0'; sparq builds for: icebreaker, ulx3s-85f"),
    (("--design", "mac", "-p", "width=3"), "design 'mac' has no parameter 'width'; its parameters are a_width=8"),
    (("--design", "mac", "-p", "a_width=True"), "parameter 'a_width' takes a int"),
    (("--design", "fifo", "-p", "depth=0"), "StreamFIFO depth must be a positive integer"),
    (("--design", "fifo", "-p", "depth"), "is not NAME=VALUE"),
])
def test_bad_input_is_one_clear_error(argv, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _run(*argv)


def test_make_design_fills_defaults():
    design, params = make_design("fifo", depth=1024)
    assert params == {"width": 16, "depth": 1024}
    assert design.depth == 1024
    assert parse_param("saturate=True") == ("saturate", True)
    assert parse_param("name=tiny") == ("name", "tiny")


def test_synthesize_refuses_unknown_board_and_bad_dsp_flag():
    with pytest.raises(ValueError, match="unknown board 'up5k'"):
        synthesize(MACCell(), "up5k")
    with pytest.raises(TypeError, match="dsp must be True or False"):
        synthesize(MACCell(), "icebreaker", dsp="yes")
    assert get_board("ulx3s-85f").device == "LFE5U-85F-BG381"


def _board_top_report(build_dir, harness=None):
    from sparq.fpga.report import SynthesisReport
    return SynthesisReport(design="systolic-board", board="icebreaker", device="iCE40UP5K-SG48", family="ice40",
                           params={}, dsp=True, resources={}, cells={}, clocks=[], critical_paths=[], memories=[],
                           multipliers=0, harness=harness, build_dir=str(build_dir))


def test_programming_needs_a_board_top_and_names_the_missing_programmer(tmp_path, monkeypatch):
    from sparq.fpga.build import program
    (tmp_path / "top.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="built inside the timing harness.*Program a board top"):
        program(_board_top_report(tmp_path, harness={"ff": 1, "lut": 1}))
    monkeypatch.setenv("ICEPROG", str(tmp_path / "no-iceprog"))
    with pytest.raises(RuntimeError, match="needs iceprog, which is not installed"):
        program(_board_top_report(tmp_path))


def test_eie_design_sizes_its_memories_to_the_digits_image():
    design, params = make_design("eie", n_pe=4)
    needed = design.image.requirements()
    assert params == {"n_pe": 4, "fifo_depth": 8, "image": "digits", "pe_counters": True, "spram": False}
    assert not hasattr(make_design("eie", n_pe=2, pe_counters=False)[0], "busy_cycles")
    assert (design.config.spmat_depth, design.config.act_depth) == (needed["spmat_depth"], needed["act_depth"])
    assert make_design("eie", n_pe=4, image="none")[0].image is None
