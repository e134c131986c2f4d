"""The files of a workspace (default ``build/sparq``) and how the steps find and check them.

* ``compressed.npz`` and ``compression.json``: what ``sparq compress`` writes;
* one directory per lowering, marked by ``sparq.json`` (:data:`MARKER`): the target's name, the model file it was
  lowered from and that file's SHA-256 (a lowered directory whose model changed since is refused), the hardware
  configuration and what the target adds (:meth:`sparq.targets.Target.lower`);
* ``simulation-<backend>.json`` in a lowered directory (:func:`simulation_path`): one
  :class:`sparq.results.SimulationResult`.

Every JSON file a step writes goes through :func:`write_json`.
"""

import hashlib
import json
from pathlib import Path

from .errors import InputError

__all__ = ["DEFAULT_WORKSPACE", "MARKER", "sha256", "require_file", "load_compressed", "load_float", "write_json",
           "write_marker", "read_marker", "simulation_path"]

DEFAULT_WORKSPACE = Path("build/sparq")
MARKER = "sparq.json"


def sha256(path):
    """The SHA-256 of the file ``path``, in hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def require_file(path, what, hint):
    """``path`` as a Path if it is a file, else an :class:`InputError` naming ``what`` is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}", hint)
    return path


def load_compressed(path):
    """The :class:`sparq.compiler.pipeline.CompressedModel` in ``path`` (what ``sparq compress`` wrote)."""
    from sparq.compiler.errors import ModelFormatError
    from sparq.compiler.pipeline import CompressedModel
    path = require_file(path, "compressed model", "run `sparq compress` first; it writes compressed.npz")
    if path.suffix.lower() != ".npz":
        raise InputError(f"{path}: EIE runs weight-shared models, and this is not one",
                         "compress it first: sparq compress MODEL, then lower the compressed.npz it writes")
    try:
        return CompressedModel.load(path)
    except ModelFormatError as error:
        raise InputError(str(error).splitlines()[0], "compress the model first with `sparq compress`") from None


def load_float(path):
    """The IR model in ``path``: a compressed ``.npz`` (its decoded weights) or any model file."""
    from sparq.compiler.errors import ModelFormatError
    from sparq.compiler.models import load_model
    from sparq.compiler.pipeline import CompressedModel
    path = require_file(path, "model file", "give a compressed.npz from `sparq compress`, an .onnx or an .npz")
    if path.suffix.lower() == ".npz":
        try:
            return CompressedModel.load(path).model
        except ModelFormatError:
            pass  # a plain .npz model, read below
    return load_model(path)


def write_json(path, data):
    """Write ``data`` to ``path`` as indented JSON (the one way the steps write their JSON files)."""
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def write_marker(directory, meta):
    """Mark ``directory`` as lowered with ``meta``; the simulation results of an earlier lowering there go (they
    describe other memories)."""
    directory = Path(directory)
    for stale in directory.glob("simulation-*.json"):
        stale.unlink()
    write_json(directory / MARKER, meta)


def read_marker(directory):
    """``(target name, meta)`` from the ``sparq.json`` of the lowered ``directory``, checked: readable, and the model
    it names unchanged since."""
    directory = Path(directory)
    marker = directory / MARKER
    if not marker.is_file():
        raise InputError(f"{directory}: not a lowered model (no {MARKER})", "run `sparq lower ... --out DIR` first")
    try:
        meta = json.loads(marker.read_text())
        target, model_path = meta["target"], Path(meta["model"])
    except (ValueError, KeyError) as error:
        raise InputError(f"{marker}: unreadable ({error})", "lower the model again") from None
    if not model_path.is_file() or sha256(model_path) != meta.get("model_sha256"):
        raise InputError(f"{directory} was lowered from {model_path}, which is missing or has changed since",
                         "lower the model again with `sparq lower`")
    return target, meta


def simulation_path(directory, backend):
    """Where the result of a simulation of the lowered ``directory`` on ``backend`` goes."""
    return Path(directory) / f"simulation-{backend}.json"
