"""sparq's compiler: model import and the Deep Compression pipeline, numpy only (onnx for import); never imports hw.

* :mod:`compiler.ir` -- the layer IR and its float32 reference inference; :mod:`compiler.train` -- numpy training.
* :mod:`compiler.onnx_io`, :mod:`compiler.npz_io`, :mod:`compiler.models` -- import (and export) of model files and
  the shipped digits MLP and CNN (:mod:`compiler.default_models` trains them; :mod:`compiler.datasets` has the data).
* :mod:`compiler.prune`, :mod:`compiler.share`, :mod:`compiler.huffman`, :mod:`compiler.sparse` -- the Deep
  Compression steps; :mod:`compiler.pipeline` runs them and :mod:`compiler.report` counts the storage.
* :mod:`compiler.quantize` (int8), :mod:`compiler.ternary` (TTQ), :mod:`compiler.lowrank` (truncated SVD) -- the
  other compression methods; :mod:`compiler.survey` measures them.
* :mod:`compiler.errors` -- the :class:`~compiler.errors.CompileError` family raised on bad input.
"""
