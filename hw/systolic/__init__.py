"""A TPU-v1-style weight-stationary systolic accelerator (issue 6).

Blocks, from the inside out: :class:`~.pe.WeightStationaryPE` (an ``sparq.hw.common.mac.MACCell`` plus double-buffered
stationary weights), :class:`~.array.SystolicArray`, :class:`~.skew.InputSkew` / :class:`~.skew.OutputDeskew`,
:class:`~.matrix.MatrixUnit` (skew + array + de-skew), :class:`~.accumulators.Accumulators`,
:class:`~.activation.Requantizer` and :class:`~.activation.ActivationUnit`, :class:`~.controller.Controller`, and the
top level :class:`~.accelerator.SystolicAccelerator`. The program format is ``sparq.formats.systolic``.
"""
