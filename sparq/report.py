"""The report a person opens: a self-contained HTML page (PNG plots embedded as data URIs, also written alongside)
and a Markdown summary, built from the files the flow left in a workspace (:mod:`sparq.workspace`), each read under
its directory's lock and checked against its record:

* ``compression.json``: the Deep Compression table and the per-layer breakdown, how it was compressed (retrained or
  one-shot, on which data; the output drift of a one-shot compression) and the curves of a sensitivity scan;
* each lowered directory's record: what each target adds about its lowering
  (:meth:`sparq.targets.Target.lowering_sections`: the EIE image's storage by memory against Deep Compression's);
* each lowered directory's ``simulation-rtl.json`` (or, without one, ``simulation-golden.json``): the targets against
  each other on the same model (cycles, MACs, memory words, energy), the roofline, and each target's own sections
  (:meth:`sparq.targets.Target.report_sections`: EIE's load balance).

The report directory (default ``<workspace>/report``) is written in one atomic write with its own record.
"""

import base64
import html
import json
from pathlib import Path

import numpy as np

from .errors import InputError
from .plots import figure, save
from .simulation import read_result
from .targets import EIE, SYSTOLIC, TARGETS, get
from .workspace import COMPRESSION, RECORD, check_output, opened, read_record, simulation_path, writing

__all__ = ["collect", "write_report"]


def _kind(directory):
    """The kind of a directory's record, read before its lock is taken (None if the record is unreadable, which
    opening the directory then reports): which subdirectories of a workspace hold lowerings."""
    try:
        return read_record(directory).kind
    except InputError:
        return None


def collect(workspace):
    """``{"compression": report or None, "runs": {Target: SimulationResult}, "lowerings": {Target: record meta}}``
    from ``workspace``; RTL runs win over golden ones, and a target's lowering is the one its run came from (else
    the first). Only files that the directories' records list are read."""
    workspace = Path(workspace)
    if not workspace.is_dir():
        raise InputError(f"{workspace}: no such workspace directory", "run `sparq demo`, or compress, lower and "
                         "simulate into it first")
    lowered = sorted(p.parent for p in workspace.glob(f"*/{RECORD}") if _kind(p.parent) in ("lowered", None))
    runs, lowerings = {}, {}
    with opened(workspace, *lowered, kinds=[None] + ["lowered"] * len(lowered)) as (top, *records):
        if top is not None and top.kind != "compressed":
            raise InputError(f"{workspace} holds the output of one step, not a workspace",
                             f"give the directory above it: sparq report {workspace.parent}")
        compression = None
        if top is not None and COMPRESSION in top.files:
            compression = json.loads((workspace / COMPRESSION).read_text())
        elif (workspace / COMPRESSION).exists():
            raise InputError(f"{workspace / COMPRESSION}: no {RECORD} in {workspace} lists it (sparq did not write "
                             "it, an older sparq did, or the record is missing)", "run `sparq compress` into "
                             f"{workspace} again")
        for record in records:
            target = get(record.meta.get("target"))
            target.check_meta(record)
            lowerings.setdefault(target, record.meta)
            for backend in ("rtl", "golden"):
                path = simulation_path(record.directory, backend)
                if path.name in record.files:
                    result = read_result(path, record)
                    current = runs.get(result.target)
                    if current is None or (current.backend == "golden" and backend == "rtl"):
                        runs[result.target] = result
                        lowerings[target] = record.meta
                    break
    if compression is None and not runs:
        raise InputError(f"{workspace}: nothing to report (no compression.json, no simulation-*.json under it)",
                         "run `sparq compress`, `sparq lower` and `sparq simulate` with this workspace first")
    return {"compression": compression, "runs": runs, "lowerings": lowerings}


# --- plots --------------------------------------------------------------------------------------------------------

def _plot_compression(report, path):
    layers = report["layers"]
    formats = (("original", "original (float32)"), ("pruned", "pruned"), ("quantized", "pruned + quantized"),
               ("huffman", "pruned + quantized + Huffman"))
    fig, ax = figure(7.5, 4.0)
    x = np.arange(len(layers))
    width = 0.2
    for i, (key, label) in enumerate(formats):
        values = [layer["bytes"][key] / 1024 for layer in layers]
        bars = ax.bar(x + (i - 1.5) * width, values, width, label=label)
        if key != "original":
            for bar, layer in zip(bars, layers):
                ax.annotate(f"{layer['ratio'][key]:.0f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{l['name']}\n{l['shape'][0]}x{l['shape'][1]}, {l['kept_percent']:.0f}% kept"
                      for l in layers])
    ax.set_ylabel("storage (KiB, log)")
    ax.set_title(f"Compression per layer: {report['model']} ({report['total']['ratio']['huffman']:.1f}x in total)")
    ax.legend(fontsize=8)
    return save(fig, path)


def _plot_sensitivity(scan, path):
    """The sensitivity scan's curves: validation accuracy against each layer's sparsity, the budget and the choices."""
    fig, ax = figure(7.5, 4.0)
    grid = np.array(scan["grid"])
    for name, curve in scan["curves"].items():
        line, = ax.plot(100 * grid, 100 * np.array(curve), "o-", markersize=3, label=f"{name} (chose "
                        f"{100 * scan['chosen'][name]:.0f} %)")
        chosen = scan["chosen"][name]
        if chosen in scan["grid"]:
            ax.plot(100 * chosen, 100 * curve[scan["grid"].index(chosen)], "*", markersize=12, color=line.get_color())
    ax.axhline(100 * scan["baseline"], color="grey", linewidth=0.8, label="unpruned")
    ax.axhline(100 * scan["baseline"] - scan["max_drop"], color="grey", linestyle=":",
               label=f"budget: {scan['max_drop']:g} points")
    ax.set_xlabel("sparsity of the one layer pruned (%)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"Sensitivity scan: one layer at a time, no retraining ({scan['validation_samples']} validation "
                 "samples)", fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, path)


def _targets(runs):
    """The targets of ``runs`` in :data:`sparq.targets.TARGETS` order."""
    return [t for t in TARGETS if t in runs]


def _plot_comparison(runs, path):
    metrics = [("cycles per image", lambda r: r.cycles / r.images),
               ("MACs performed per image", lambda r: r.macs_performed / r.images),
               ("memory words read per image", lambda r: r.target.memory_words(r) / r.images),
               ("energy per image (nJ)", lambda r: r.energy["total_pj"] / r.images / 1000)]
    fig, axes = figure(10, 3.2, ncols=len(metrics))
    targets = _targets(runs)
    for ax, (title, value) in zip(axes, metrics):
        values = [value(runs[t]) for t in targets]
        bars = ax.bar([t.short_label for t in targets], values, color=[t.color for t in targets])
        for bar, v in zip(bars, values):
            ax.annotate(f"{v:,.0f}" if v >= 10 else f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, v),
                        ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.margins(y=0.15)
    return save(fig, path)


def _plot_energy(runs, path):
    fig, ax = figure(10, 3.4)
    targets = _targets(runs)
    cmap = __import__("matplotlib").colormaps["tab20"]
    for row, target in enumerate(targets):
        left = 0.0
        for i, (part, pj) in enumerate(runs[target].energy["parts_pj"].items()):
            nj = pj / runs[target].images / 1000
            ax.barh(row, nj, left=left, color=cmap((i + 7 * row) % 20), label=f"{target.name}: {part}")
            left += nj
        ax.annotate(f" {left:,.1f} nJ", (left, row), va="center", fontsize=8)
    ax.set_yticks(range(len(targets)), [t.label for t in targets])
    ax.set_xlabel("energy per image (nJ), 45 nm table")
    ax.margins(x=0.12)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Where the energy goes")
    return save(fig, path)


def _plot_roofline(runs, path):
    fig, ax = figure(6.5, 4.5)
    intensity = np.logspace(-2, 3, 200)
    for target, run in runs.items():
        peak = 2 * run.peak_macs_per_cycle
        bandwidth = run.bandwidth_bytes_per_cycle
        ax.plot(intensity, np.minimum(peak, intensity * bandwidth), color=target.color,
                label=f"{target.label} ceiling: {peak} ops/cycle, {bandwidth:g} B/cycle")
        point = (2 * run.macs_performed / run.weight_bytes, 2 * run.macs_performed / run.cycles)
        ax.plot(*point, "o", color=target.color, markersize=9, label=f"{target.label} measured "
                f"({point[1]:.2f} ops/cycle at {point[0]:.1f} ops/byte)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (ops per weight byte read)")
    ax.set_ylabel("ops per cycle (1 MAC = 2 ops)")
    ax.set_title("Roofline")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return save(fig, path)


# --- tables ------------------------------------------------------------------------------------------------------

def _compression_rows(report):
    header = ["layer", "weights", "kept", "weight bits (Q / H)", "index bits (Q / H)", "size", "compressed",
              "ratio P", "ratio P+Q", "ratio P+Q+H"]
    rows = []
    for row in (*report["layers"], report["total"]):
        rows.append([row["name"], f"{row['weights']:,}", f"{row['kept_percent']:.1f}%",
                     f"{row.get('weight_bits', '')} / {row['huffman_weight_bits']:.2f}",
                     f"{row.get('index_bits', '')} / {row['huffman_index_bits']:.2f}",
                     f"{row['bytes']['original'] / 1024:,.1f} KiB", f"{row['bytes']['huffman'] / 1024:,.2f} KiB",
                     *(f"{row['ratio'][f]:.1f}x" for f in ("pruned", "quantized", "huffman"))])
    return header, rows


def _comparison_rows(runs):
    targets = _targets(runs)
    header = ["per image"] + [t.label for t in targets]

    def line(label, value, fmt="{:,.0f}"):
        return [label] + [fmt.format(value(runs[t])) for t in targets]

    rows = [
        ["configuration"] + [t.config_text(runs[t]) for t in targets],
        ["simulated on"] + [f"{runs[t].backend} ({runs[t].counter_source})" for t in targets],
        line("test images", lambda r: r.images),
        ["accuracy (float reference)"]
        + [f"{100 * runs[t].accuracy:.1f}% ({100 * runs[t].float_accuracy:.1f}%)" if runs[t].accuracy is not None
           else f"not measured; {100 * runs[t].float_agreement:.1f}% agree with float" for t in targets],
        line("cycles", lambda r: r.cycles / r.images),
        line("MACs performed", lambda r: r.macs_performed / r.images),
        line("useful MACs (non-zero weight)", lambda r: r.useful_macs / r.images),
        ["MACs per cycle (peak)"] + [f"{runs[t].macs_per_cycle:.2f} ({runs[t].peak_macs_per_cycle})" for t in targets],
        line("utilization of the MACs", lambda r: 100 * r.utilization, "{:.1f}%"),
        line("memory words read", lambda r: r.target.memory_words(r) / r.images),
        line("weight bytes read", lambda r: r.weight_bytes / r.images),
        line("energy (nJ, 45 nm)", lambda r: r.energy["total_pj"] / r.images / 1000, "{:,.1f}"),
    ]
    return header, rows


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header, rows):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _findings(runs):
    """Sentences on where EIE and the systolic array each win, computed from their runs."""
    if not {EIE, SYSTOLIC} <= set(runs):
        return []
    e, s = runs[EIE], runs[SYSTOLIC]
    per = lambda r, k: getattr(r, k) / r.images  # noqa: E731
    energy = lambda r: r.energy["total_pj"] / r.images  # noqa: E731
    onchip = lambda r: sum(v for k, v in r.energy["parts_pj"].items() if "DRAM" not in k) / r.images  # noqa
    faster = "EIE" if per(e, "cycles") < per(s, "cycles") else "the systolic array"
    return [
        f"EIE performs {per(s, 'macs_performed') / per(e, 'macs_performed'):.1f}x fewer MACs per image "
        f"({per(e, 'macs_performed'):,.0f} against {per(s, 'macs_performed'):,.0f}): it skips zero weights and zero "
        f"activations, while the array multiplies every slot of every tile.",
        f"{faster} takes fewer cycles per image ({per(e, 'cycles'):,.0f} for EIE on {e.peak_macs_per_cycle} "
        f"PEs, {per(s, 'cycles'):,.0f} for the {s.config['rows']}x{s.config['cols']} array with "
        f"{min(s.details.batch, s.images)} images per call); the array runs its MACs at {100 * s.utilization:.0f}% "
        f"of its peak, EIE at {100 * e.utilization:.0f}% (irregular columns: starvation and padding entries).",
        f"Energy per image: EIE {energy(e) / 1000:,.1f} nJ, systolic {energy(s) / 1000:,.1f} nJ, of which "
        f"{(energy(s) - onchip(s)) / 1000:,.1f} nJ is the weights and data the array streams from the host "
        f"(DRAM); on-chip only, systolic {onchip(s) / 1000:,.1f} nJ. EIE's compressed weights stay in SRAM; per "
        f"MAC, EIE pays for its irregular access ({energy(e) / per(e, 'macs_performed'):.1f} pJ per MAC against "
        f"{onchip(s) / per(s, 'macs_performed'):.2f} pJ on chip for the array).",
    ]


ENERGY_NOTE = ("Energy = counts x pJ per operation from the 45 nm table (Horowitz, ISSCC 2014; REFERENCE.md): 16-bit "
               "multiplies at 0.2 pJ x (16/8)^2, adds scaled linearly from the 32-bit point, every on-chip memory or "
               "register-file access at the 8 KB SRAM's 5 pJ per 32 bits (the table has no register-file entry: an "
               "upper bound), host transfers at the DRAM's 640 pJ per 32 bits. Cycles and EIE's per-PE counters "
               "come from the RTL performance counters; neither RTL counts its memory accesses or MACs, so those "
               "counts are derived from the bit-exact golden model's replay of the same image or program "
               "(sparq/activity.py states the rules).")

ROOFLINE_NOTE = ("Roofline: ops = 2 x MACs performed by the hardware; bytes = weight bytes read by the compute "
                 "(EIE: sparse-matrix words and pointers from on-chip SRAM; systolic: int8 weights streamed in "
                 "through the host port on every call). Ceilings: peak = 2 x MACs per cycle of the "
                 "configuration; bandwidth = {}.")


def _compression_section(compression, path, out):
    """The report's compression section; a ``compression.json`` without the keys it reads is an
    :class:`InputError` (sparq checked its SHA-256, so it is sparq's: of another version)."""
    try:
        header, rows = _compression_rows(compression)
        mode = compression["mode"]
        text = (f"Deep Compression of `{compression['model']}` (P: pruned, Q: quantized with "
                f"{compression['config']['bits']}-bit shared weights, H: Huffman), "
                f"{'retrained' if mode == 'retrained' else 'one-shot (no training)'}, on {compression['data']}. ")
        if compression["accuracy"]:
            text += "Test accuracy: " + ", ".join(f"{stage} {100 * v:.2f}%"
                                                  for stage, v in compression["accuracy"].items()) + "."
        else:
            text += compression["accuracy_note"][0].upper() + compression["accuracy_note"][1:] + "."
        drift = compression["output_drift"]
        if drift:
            text += (f" The compressed model's outputs against the float model's on {drift['samples']:,} samples: "
                     f"relative RMS error {100 * drift['relative_rms_error']:.2f}%, top-1 agreement "
                     f"{100 * drift['top1_agreement']:.2f}%.")
        pngs = [_plot_compression(compression, out / "compression.png")]
        scan = compression.get("sensitivity")
        if scan:
            chosen = ", ".join(f"{name} {100 * v:.0f} %" for name, v in scan["chosen"].items())
            text += (f" Sparsities chosen by a sensitivity scan (each layer alone, pruned without retraining, on "
                     f"{scan['validation_samples']} validation samples held out of the training split; the highest "
                     f"sparsity up to which every point stays within {scan['max_drop']:g} points of the unpruned "
                     f"{100 * scan['baseline']:.2f}%): {chosen}; then the whole model was pruned to them and "
                     f"{'retrained' if mode == 'retrained' else 'shared without retraining'}.")
            pngs.append(_plot_sensitivity(scan, out / "sensitivity.png"))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise InputError(f"{path}: not a compression report this sparq reads ({type(error).__name__} {error})",
                         "run `sparq compress` again") from None
    return ("Compression", text + "\n\n" + _markdown_table(header, rows),
            f"<p>{html.escape(text)}</p>" + _html_table(header, rows), pngs)


def write_report(workspace, out_dir=None):
    """Write ``index.html``, ``report.md`` and the PNGs into ``out_dir`` (default ``<workspace>/report``); return
    the path of the HTML page."""
    out = check_output(Path(out_dir) if out_dir else Path(workspace) / "report", "report")
    data = collect(workspace)
    compression, runs, lowerings = data["compression"], data["runs"], data["lowerings"]
    with writing(out, "report") as transaction:
        staging = transaction.staging
        sections = []  # (title, markdown text, html text, [png paths])
        if compression:
            sections.append(_compression_section(compression, Path(workspace) / COMPRESSION, staging))
            transaction.step("wrote compression.png")
        for target in TARGETS:
            if target in lowerings:
                sections += target.lowering_sections(lowerings[target], staging)
        if runs:
            header, rows = _comparison_rows(runs)
            findings = _findings(runs)
            versus = "_vs_".join(t.name for t in TARGETS)
            pngs = [_plot_comparison(runs, staging / f"{versus}.png"), _plot_energy(runs, staging / "energy.png")]
            md = _markdown_table(header, rows) + "\n\n" + "\n".join(f"- {f}" for f in findings) + "\n\n" + ENERGY_NOTE
            page = _html_table(header, rows) + "<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in findings) + \
                f"</ul><p class='note'>{html.escape(ENERGY_NOTE)}</p>"
            sections.append((" against ".join(t.short_label for t in TARGETS) + " on the same model", md, page, pngs))
            basis = "; ".join(f"{t.label}: {r.bandwidth_basis}" for t, r in runs.items())
            note = ROOFLINE_NOTE.format(basis)
            sections.append(("Roofline", note, f"<p class='note'>{html.escape(note)}</p>",
                             [_plot_roofline(runs, staging / "roofline.png")]))
            for target in _targets(runs):
                sections += target.report_sections(runs[target], staging)
            transaction.step("wrote the plots")
        markdown = ["# sparq report", ""]
        body = []
        for title, md, page, pngs in sections:
            markdown += [f"## {title}", "", md, ""] + [f"![{title}]({p.name})" for p in pngs] + [""]
            images = "".join(f"<figure><img alt='{html.escape(p.stem)}' src='data:image/png;base64,"
                             f"{base64.b64encode(p.read_bytes()).decode()}'></figure>" for p in pngs)
            body.append(f"<section><h2>{html.escape(title)}</h2>{page}{images}</section>")
        transaction.write_text("report.md", "\n".join(markdown))
        transaction.write_text("index.html", _PAGE.format(body="".join(body)))
    return out / "index.html"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sparq report</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }} .note {{ color: #555; font-size: 0.85em; }}
</style></head>
<body><h1>sparq report</h1>
{body}
</body></html>
"""
