"""Back end for the systolic accelerator: lowers int8 GEMMs (and, through im2col, convolutions) to
``sparq.formats.systolic`` programs plus their weight images, and checks that they fit the hardware configuration.

Lowering of one GEMM ``Y = requantize(X @ W + bias)`` with ``X`` of ``M x K`` (run-time input in the unified
buffer), ``W`` of ``K x N`` (static):

* ``W`` is cut into ``rows x cols`` tiles (``KT = ceil(K / rows)`` by ``NT = ceil(N / cols)``), zero-padded at the
  edges, each stored as ``rows`` weight-buffer words; each output-column tile has a parameter record (bias,
  multiplier, shift). All of them go to the weight buffer once, by READ_WEIGHTS at the start of the program.
* ``X`` is in the unified buffer as ``KT`` blocks of ``M`` words (``sparq.formats.systolic.pack_matrix``); ``Y`` is
  written as ``NT`` blocks of ``M`` words, which is the next layer's input layout.
* Rows are processed in chunks of at most ``acc_depth // 2`` (two accumulator regions, alternated, so that an
  ACTIVATE drains one region while MATMUL fills the other). For each output tile and row chunk: for each K tile,
  LOAD_WEIGHTS into the next bank (alternating, so the next tile shifts in while the current one computes) then
  MATMUL (overwrite for the first K tile, accumulate after); then ACTIVATE. The first LOAD_WEIGHTS of the next
  group is placed before the ACTIVATE, so that it overlaps the drain.

Capacity errors name the memory, the words needed, the words available and the parameter to raise.

Networks (:func:`compile_network`) are quantized with :mod:`sparq.compiler.quantize` (symmetric per-channel int8
weights, calibrated activations, round-half-up requantization -- the same integer rule the hardware runs) and cut
into steps:

* **device** steps: a run of Dense layers (each with the ReLU that follows it fused into its ACTIVATE) is one
  program whose activations stay in the unified buffer; a Conv layer (with its ReLU) is one GEMM over the im2col
  matrix. The last layer is requantized to int8 too, with a scale calibrated on the float logits.
* **host** steps, in numpy on int8 values: reshape, flatten, **im2col** (rows ``(image, out_y, out_x)``, columns
  ``(in_channel, ky, kx)``, zero padding -- zero is the quantized 0), back to NCHW after a convolution, and
  **max pooling** (exact on int8, since requantization is monotonic; padding is -128) and **average pooling**
  (exact window sums requantized by ``1 / count``, as :func:`sparq.compiler.quantize.forward_int8`). Pooling and
  flatten are on the host side, not in the activation unit.

Each device step runs in chunks of at most ``batch`` images, ``batch`` being the largest that fits the unified
buffer (:func:`max_batch`).

With ``winograd=True`` (and a Winograd build, ``SystolicConfig(winograd=True)``), 3x3 stride-1 convolutions are
lowered by Winograd F(2x2, 3x3) instead (:mod:`sparq.compiler.systolic.winograd`, one ``WinogradStep`` doing its own tiling),
with int8 outputs identical to im2col's; other conv layers fall back to im2col, with a note in
``SystolicNetwork.notes``.

Modules: :mod:`.program` (the program builder), :mod:`.gemm` (GEMM lowering), :mod:`.network` (networks and their
execution), :mod:`.winograd` (the Winograd lowering).
"""

from . import gemm, network, program
from .gemm import *  # noqa: F403
from .network import *  # noqa: F403
from .program import *  # noqa: F403

__all__ = [*program.__all__, *gemm.__all__, *network.__all__]
