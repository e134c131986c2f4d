"""What a simulation measured, typed: :class:`Measurement` is what a target's run returns (cycles, MACs, memory and
energy, and ``details``, the target's own dataclass of further numbers); :class:`SimulationResult` adds the run
around it (backend, model, images, accuracy, time). :meth:`SimulationResult.to_json` is the flat object of
``simulation-<backend>.json``, the target's details among the common keys; :meth:`SimulationResult.from_json` reads it
back.
"""

from dataclasses import asdict, dataclass, fields

__all__ = ["BACKENDS", "Measurement", "SimulationResult"]

BACKENDS = ("golden", "rtl")
"""What a simulation runs on: the golden model (bit-exact numpy, cycles from a cycle model) or the RTL."""


@dataclass
class Measurement:
    """The numbers of one target's run on a batch of images.

    ``predictions`` are the predicted classes (the arg-max of each output) and ``outputs`` the outputs themselves,
    in real units (float64, one row per input: the accelerator's fixed-point outputs times its output scale; not
    stored in the JSON, and None in a result read back); ``cycles`` the total cycles and ``compute_cycles`` those not spent
    waiting on the host; ``model_cycles`` what the target's cycle model predicts; ``counter_source`` where the
    cycles came from (the RTL's performance counters or a cycle model). ``activity`` counts what the design did
    (:mod:`sparq.activity`), ``macs_performed`` and ``useful_macs`` (non-zero weight) the MACs among it; ``energy``
    is :mod:`sparq.energy`'s ``{"parts_pj", "total_pj"}``. ``peak_macs_per_cycle``, ``weight_bytes`` (weight bytes
    read by the compute) and ``bandwidth_bytes_per_cycle`` (with ``bandwidth_basis`` saying what it counts) place
    the run on the roofline. ``details`` is the target's own dataclass (:attr:`sparq.targets.Target.details`).
    """

    predictions: list[int]
    outputs: object
    cycles: int
    compute_cycles: int
    model_cycles: int
    counter_source: str
    activity: dict[str, int]
    macs_performed: int
    useful_macs: int
    peak_macs_per_cycle: int
    weight_bytes: float
    bandwidth_bytes_per_cycle: float
    bandwidth_basis: str
    energy: dict
    details: object


@dataclass
class SimulationResult(Measurement):
    """A :class:`Measurement` and the run it came from: the :class:`sparq.targets.Target` ``target``, the
    ``backend`` ("golden" or "rtl"), the ``model`` file, the hardware ``config`` (as in ``sparq.json``), the
    ``data`` the inputs came from (one line) and what they are (``inputs``: "digits test images", "test samples of
    x.npz"), the number of inputs (``images``) and their ``labels``, the
    ``accuracy`` of the predictions and ``float_accuracy`` of the float model on the same inputs (``labels`` and both
    accuracies None for data without labels), ``float_agreement``, the share of inputs whose prediction is the float
    model's, the wall-clock ``seconds`` of the run and the ``build_seconds`` of a Verilator build within it."""

    target: object
    backend: str
    model: str
    config: dict
    data: str
    inputs: str
    images: int
    labels: list[int] | None
    accuracy: float | None
    float_accuracy: float | None
    float_agreement: float
    seconds: float
    build_seconds: float

    @classmethod
    def of(cls, measured, **run):
        """The result of the :class:`Measurement` ``measured`` in the run that ``run`` describes (the fields this
        class adds)."""
        return cls(**{f.name: getattr(measured, f.name) for f in fields(measured)}, **run)

    @property
    def macs_per_cycle(self):
        """MACs performed per cycle."""
        return self.macs_performed / self.cycles if self.cycles else 0.0

    @property
    def utilization(self):
        """MACs per cycle against the peak."""
        return self.macs_per_cycle / self.peak_macs_per_cycle

    def to_json(self):
        """The JSON object of ``simulation-<backend>.json``: every field but the outputs, the details' fields among
        them, the target by name, and the derived ``macs_per_cycle`` and ``utilization``."""
        data = {}
        for f in fields(self):
            if f.name == "details":
                data.update(asdict(self.details))
            elif f.name != "outputs":
                data[f.name] = getattr(self, f.name)
        data.update(target=self.target.name, macs_per_cycle=self.macs_per_cycle, utilization=self.utilization)
        return data

    @classmethod
    def from_json(cls, data, target):
        """The result in ``data`` (from :meth:`to_json`) of ``target``; a missing key raises ``KeyError``."""
        own = {f.name: data[f.name] for f in fields(cls) if f.name not in ("details", "target", "outputs")}
        details = target.details(**{f.name: data[f.name] for f in fields(target.details)})
        return cls(**own, details=details, target=target, outputs=None)
