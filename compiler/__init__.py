"""sparq's compiler: model import and the Deep Compression pipeline, numpy only (onnx for import); never imports hw.

* :mod:`sparq.compiler.ir` -- the layer IR and its float32 reference inference; :mod:`sparq.compiler.train` -- numpy training.
* :mod:`sparq.compiler.onnx_io`, :mod:`sparq.compiler.npz_io`, :mod:`sparq.compiler.models` -- import (and export) of model files and
  the shipped models (:mod:`sparq.compiler.default_models` trains them; :mod:`sparq.compiler.datasets` has the data).
* :mod:`sparq.compiler.data` -- a user's data from an ``.npz`` file, checked against the model.
* :mod:`sparq.compiler.prune`, :mod:`sparq.compiler.share`, :mod:`sparq.compiler.huffman`, :mod:`sparq.compiler.sparse` -- the Deep
  Compression steps; :mod:`sparq.compiler.pipeline` runs them (retrained, one-shot, or with the per-layer sparsities
  of :mod:`sparq.compiler.sensitivity`) and :mod:`sparq.compiler.report` counts the storage.
* :mod:`sparq.compiler.ranges` -- weights and activations out of range, reported before any work starts.
* :mod:`sparq.compiler.quantize` (int8), :mod:`sparq.compiler.ternary` (TTQ), :mod:`sparq.compiler.lowrank` (truncated SVD) -- the
  other compression methods; :mod:`sparq.compiler.survey` measures them.
* :mod:`sparq.compiler.eie`, :mod:`sparq.compiler.systolic` -- the lowerings to an EIE image and to systolic programs
  (:mod:`sparq.compiler.parallel` splits them over several instances).
* :mod:`sparq.compiler.errors` -- the :class:`~sparq.compiler.errors.CompileError` family raised on bad input.
"""
