"""Tables and figures from ``RESULTS.json`` files.

``python -m deepcut.evaluation.report RESULTS.json... [--figure FIG.png]`` prints one Markdown
table per task and, with ``--figure``, draws the per-image IoU (J, mIoU) distributions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .runner import TASK_METRICS

#: Per-image value plotted for each task.
PER_IMAGE_KEY = {"single": "iou", "corloc": "box_iou", "video": "j", "parts": "miou", "objects": "recall"}
HEADERS = {"box_iou": "box IoU", "iou": "IoU", "accuracy": "Acc", "max_fbeta": "max Fβ", "corloc": "CorLoc", "j": "J",
           "nmi": "NMI", "ari": "ARI", "miou": "mIoU", "recall": "Recall@0.5", "mask_iou": "mask IoU"}


def method_label(result: dict) -> str:
    """Short name of the method of a result: ``DeepCut NCut``, ``DeepCut CC``, ``spectral``, ``k-means``
    (objects task with ``--objects auto``: `` auto`` appended)."""
    if result.get("task") == "objects" and (result.get("options") or {}).get("objects") == "auto":
        return _base_label(result) + " auto"
    return _base_label(result)


def figure_label(result: dict) -> str:
    """:func:`method_label` for the figure: objects runs also say their N and a backbone other than colour."""
    label = method_label(result)
    options, backbone = result.get("options") or {}, (result.get("backbone") or {}).get("name", "color")
    if result.get("task") == "objects":
        label += "" if options.get("objects") == "auto" else f" N={options.get('objects')}"
        random = "--random-weights" in str(result.get("command", ""))
        label += "" if backbone == "color" else f" ({backbone}{', random' if random else ''})"
    return label.replace("DeepCut ", "DeepCut\n")


def _base_label(result: dict) -> str:
    method = result.get("method", "deepcut")
    if method == "deepcut":
        label = f"DeepCut {(result.get('config') or {}).get('loss', 'ncut').upper().replace('NCUT', 'NCut')}"
        if (result.get("options") or {}).get("video_mode") == "temporal":
            label += " temporal"
        return label
    if method == "spectral":
        graph = (result.get("options") or {}).get("spectral_graph") or "deepcut"
        return "spectral NCut" + ("" if graph == "deepcut" else f" ({graph} graph)")
    return {"kmeans": "k-means"}.get(method, method)


def dataset_label(result: dict) -> str:
    return Path(str(result.get("dataset", "?"))).name


def _fmt(v) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}"


def summary_table(results: list[dict], with_time: bool = True) -> str:
    """A Markdown table (one row per result) of the headline metrics, in percent."""
    if not results:
        return ""
    tasks = sorted({r["task"] for r in results}, key=list(TASK_METRICS).index)
    keys = [k for t in tasks for k in TASK_METRICS[t]]
    head = ["dataset", "method", "images", *(HEADERS[k] for k in keys)] + (["s/img"] if with_time else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [dataset_label(r), method_label(r), str(r.get("num_images", "?")), *(_fmt(r.get(k)) for k in keys)]
        if with_time:
            s = r.get("seconds_per_image")
            row.append("–" if s is None else f"{s:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def tables_by_task(results: list[dict], commands: bool = False) -> str:
    """One Markdown table per task (``### task``), rows in the given order.

    With ``commands``, each table is followed by the exact command that produced each row.
    """
    out = []
    for task in TASK_METRICS:
        rs = [r for r in results if r.get("task") == task]
        if not rs:
            continue
        out.append(f"### {task}\n\n{summary_table(rs)}\n")
        if commands:
            lines = [r.get("command") or f"# {dataset_label(r)} / {method_label(r)}: command not recorded" for r in rs]
            out.append("```bash\n" + "\n".join(lines) + "\n```\n")
    return "\n".join(out)


def plot_distributions(results: list[dict], path: str | Path) -> Path:
    """Box plots of the per-image IoU (video: J per frame; parts: mIoU; corloc: best box IoU).

    One panel per dataset, one box per method. Writes ``path`` (PNG) and returns it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[str, list[dict]] = {}
    for r in results:
        panels.setdefault(f"{dataset_label(r)} ({r['task']})", []).append(r)
    n = len(panels)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (title, rs) in zip(axes.ravel(), panels.items(), strict=False):
        key = PER_IMAGE_KEY[rs[0]["task"]]
        data = [[v[key] for v in r["per_image"].values() if v.get(key) is not None] for r in rs]
        labels = [figure_label(r) for r in rs]
        ax.boxplot(data, showmeans=True, meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": "k"})
        crowded = len(labels) > 5  # e.g. the objects panel's N = 1 / 3 / auto runs: slanted, so they do not overlap
        ax.set_xticks(range(1, len(labels) + 1), [lb.replace("\n", " ") if crowded else lb for lb in labels],
                      fontsize=7 if crowded else 8, rotation=30 if crowded else 0, ha="right" if crowded else "center")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel({"iou": "IoU", "box_iou": "best box IoU", "j": "J (per frame)", "miou": "mIoU",
                       "recall": "box recall at IoU 0.5"}[key], fontsize=9)
        if key == "box_iou":
            ax.axhline(0.5, color="tab:red", lw=0.8, ls="--")  # the CorLoc threshold
        ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sort_results(results: list[dict]) -> list[dict]:
    """Order by task, dataset, then DeepCut NCut, DeepCut CC, spectral, k-means, others."""
    order = ["DeepCut NCut", "DeepCut CC", "DeepCut NCut temporal", "spectral NCut", "k-means"]

    def key(r: dict):
        task = list(TASK_METRICS).index(r["task"]) if r.get("task") in TASK_METRICS else len(TASK_METRICS)
        label = method_label(r)
        return task, dataset_label(r), order.index(label) if label in order else len(order), label

    return sorted(results, key=key)


def paired_comparison(a: dict, b: dict) -> dict | None:
    """Compare two results of the same task on the images both scored (per-image IoU / J / mIoU,
    CorLoc: best box IoU): mean difference ``a - b``, how many images each wins, and the two-sided
    p-value of the Wilcoxon signed-rank test. None if they share fewer than 2 images."""
    from scipy.stats import wilcoxon

    key = PER_IMAGE_KEY[a["task"]]
    common = sorted(set(a["per_image"]) & set(b["per_image"]))
    pairs = [(a["per_image"][k].get(key), b["per_image"][k].get(key)) for k in common]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    if len(pairs) < 2:
        return None
    x, y = (list(v) for v in zip(*pairs, strict=False))
    diff = [u - v for u, v in pairs]
    nonzero = [d for d in diff if abs(d) > 1e-12]
    p = float(wilcoxon(x, y).pvalue) if len(nonzero) >= 2 else 1.0
    return {"key": key, "images": len(pairs), "mean_diff": sum(diff) / len(diff),
            "wins": sum(d > 1e-12 for d in diff), "losses": sum(d < -1e-12 for d in diff), "p_value": p}


def comparison_table(results: list[dict], reference: str = "DeepCut NCut") -> str:
    """Markdown: for each dataset, the ``reference`` method against every other one, image by image."""
    lines = ["| dataset | per image | comparison | Δ mean | wins / losses | Wilcoxon p |", "|---|---|---|---|---|---|"]
    by_data: dict[str, list[dict]] = {}
    for r in results:
        by_data.setdefault(dataset_label(r), []).append(r)
    for name, rs in by_data.items():
        ref = next((r for r in rs if method_label(r) == reference), None)
        if ref is None:
            continue
        for other in rs:
            if other is ref or other["task"] != ref["task"]:
                continue
            c = paired_comparison(ref, other)
            if c is None:
                continue
            lines.append(f"| {name} | {HEADERS.get(c['key'], c['key'])} | {reference} − {method_label(other)} | "
                         f"{100 * c['mean_diff']:+.1f} | {c['wins']} / {c['losses']} | {c['p_value']:.2g} |")
    return "\n".join(lines)


def load_results(paths: list[str | Path]) -> list[dict]:
    """Read ``RESULTS.json`` files, sorted with :func:`sort_results`.

    JSON files that are not results of ``python -m deepcut eval`` (no ``task`` / ``per_image``) are
    skipped with a note on stderr, so a folder shared with other reports can be globbed.
    """
    results = []
    for p in paths:
        data = json.loads(Path(p).read_text())
        if not isinstance(data, dict) or data.get("task") not in TASK_METRICS or "per_image" not in data:
            print(f"note: {p} is not a `deepcut eval` result; skipped", file=sys.stderr)
            continue
        results.append(data)
    return sort_results(results)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deepcut.evaluation.report",
                                description="Markdown tables (and a figure) from RESULTS.json files")
    p.add_argument("results", nargs="+", help="RESULTS.json files written by `python -m deepcut eval`")
    p.add_argument("--figure", help="also draw the per-image IoU distributions to this PNG")
    p.add_argument("--commands", action="store_true", help="list the command of each row under its table")
    p.add_argument("--compare", action="store_true",
                   help="add a paired, image-by-image comparison of DeepCut NCut with the other methods")
    args = p.parse_args(argv)
    try:
        results = load_results(args.results)
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: JSON nested too deep to be a result
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(tables_by_task(results, commands=args.commands))
    if args.compare:
        print("### DeepCut NCut against the others, image by image\n")
        print(comparison_table(results))
    if args.figure:
        print(f"figure: {plot_distributions(results, args.figure)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
