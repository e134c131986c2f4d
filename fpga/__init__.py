"""The FPGA flow: both accelerators on real boards with the open toolchain from PyPI.

* :mod:`sparq.fpga.toolchain` points Amaranth's platforms at the YoWASP Yosys, nextpnr and packers (nothing to export);
* :mod:`sparq.fpga.build` ``synthesize(design, board)`` builds any design for the iCEBreaker (iCE40 UP5K) or a ULX3S
  (ECP5), inside the scan-chain :mod:`sparq.fpga.harness` when it has ports, and returns a :mod:`sparq.fpga.report`;
* :mod:`sparq.fpga.designs` names the designs ``sparq synth`` builds (:mod:`sparq.fpga.cli`);
* :mod:`sparq.fpga.top` holds the board tops users program (model image in block RAM, UART host interface, LEDs), with
  :mod:`sparq.fpga.images` for the model images, and :mod:`sparq.fpga.driver` is the pyserial host driver that talks to them.
"""
