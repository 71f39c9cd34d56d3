"""How the benchmark's cost grows towards the seed paper's scale (TCGA: 9,349 profiles, 19
classes; 56,902 genes; ARCHS4 -> TCGA pretraining on 53,282 profiles).

For each cohort size it writes a seeded synthetic TCGA-shaped cohort
(``exprssl.datasets.synthetic(n, genes, 19, counts=False, seed=0)``), asks the cost model for its
plan (``exprssl.benchmark(..., dry_run=True)``), runs ``exprssl.benchmark`` with the default
protocol (SCARF, BYOL and VIME against the default baselines) and then the report, and records
per stage (loading, pretraining, features, evaluation, attributions, report) the wall seconds and
the peak RSS of the whole process tree (the parent and its worker processes, sampled every 0.2
s), and per approach the seconds of its cells (``tuning.csv``). It fits each approach's growth
exponent in n (log-log least squares over the sizes: mean seconds of a cell at the largest
fraction against its labelled profiles) and each stage's, prints the tables, the estimate
against the actual seconds, and the extrapolation to the paper's setting.

    python benchmarks/paper_scale.py                           # 1000,3000,9349 x 20,000 genes
    python benchmarks/paper_scale.py --sizes 1000 --genes 5000 --methods scarf
    python benchmarks/paper_scale.py --sizes 60,120 --genes 200 --quick     # a smoke run
    python benchmarks/paper_scale.py --sizes 9349 --dry-run    # the plan only, nothing trained

``--quick`` restricts the run (SCARF; logistic regression and XGBoost; two fractions; one
split, one seed, two epochs) to check the script. Seconds measured on a shared machine move with
its load: the script prints the load average at the start and end of each run; compare ratios
measured in one session.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PAPER = {"n": 9349, "genes": 56902, "classes": 19, "archs4": 53282}
GENE_APPROACHES = ("logreg", "elasticnet", "xgboost", "mlp")  # baselines reading the genes
STAGES = ("loading", "pretraining", "features", "evaluation", "attributions", "report")


# --------------------------------------------------------------------------- memory
def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every process descending from it (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier += kids
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


class Sampler(threading.Thread):
    """The process tree's RSS every ``interval`` seconds, with stage windows marked by
    ``stage(name)``; ``peaks()`` gives each stage's largest sample."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.samples, self.windows = interval, [], {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.perf_counter(), tree_rss(os.getpid())))
            self.halt.wait(self.interval)

    def stage(self, name: str):
        sampler = self

        class Window:
            def __enter__(self):
                sampler.samples.append((time.perf_counter(), tree_rss(os.getpid())))
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                sampler.samples.append((time.perf_counter(), tree_rss(os.getpid())))
                t0, t1 = sampler.windows.get(name, (self.t0, 0))
                sampler.windows[name] = (t0, time.perf_counter())

        return Window()

    def peaks(self) -> dict[str, float]:
        return {
            name: max((r for t, r in self.samples if t0 <= t <= t1), default=0) / 2**20
            for name, (t0, t1) in self.windows.items()
        }


def instrument() -> None:
    """Mark the runner's stages for the sampler of the run in progress (loading: from reading
    the data to the plan)."""
    from exprssl.evaluation import runner

    def wrap(name, fn):
        def timed(*args, **kwargs):
            sampler = SAMPLER["now"]
            if sampler is None:
                return fn(*args, **kwargs)
            with sampler.stage(name):
                return fn(*args, **kwargs)

        return timed

    runner.load_cohort = wrap("loading", runner.load_cohort)
    runner.plan_benchmark = wrap("loading", runner.plan_benchmark)
    runner.pretrain_stage = wrap("pretraining", runner.pretrain_stage)
    runner.evaluate_stage = wrap("evaluation", runner.evaluate_stage)
    runner.attribution_stage = wrap("attributions", runner.attribution_stage)


# --------------------------------------------------------------------------- one size
def options(args) -> dict:
    """The benchmark's options: the default protocol, or ``--quick``'s restriction; options
    given on the command line win."""
    opts = dict(label="label", jobs=args.jobs, progress=False, report=False)
    opts["methods"] = ["scarf"] if args.quick else DEFAULT_METHODS.split(",")
    if args.quick:
        opts.update(
            baselines=["logreg", "xgboost"],
            fractions=[0.5, 1.0],
            splits=1,
            seeds=1,
            epochs=2,
            finetune={"epochs": 3, "patience": 2},
            bootstrap=100,
        )
    for key in ("methods", "baselines"):
        if getattr(args, key):
            opts[key] = getattr(args, key).split(",")
    if args.fractions:
        opts["fractions"] = [float(f) for f in args.fractions.split(",")]
    for key in ("splits", "seeds", "epochs"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    return opts


DEFAULT_METHODS = "scarf,byol,vime"
SAMPLER: dict[str, Sampler | None] = {"now": None}  # the sampler of the run in progress


def run_size(n: int, args, workdir: Path) -> dict:
    import exprssl
    from exprssl.datasets import synthetic
    from exprssl.io import write_h5ad
    from exprssl.report import write_report

    data = workdir / f"tcga_like_{n}x{args.genes}.h5ad"
    if not data.exists():
        write_h5ad(synthetic(n, args.genes, args.classes, counts=False, seed=0), data)
    out = workdir / f"bench_{n}"
    opts = options(args)
    plan = exprssl.benchmark(str(data), out=str(out), dry_run=True, **opts)
    row = {"n": n, "genes": args.genes, "plan": plan.to_dict(), "lines": plan.describe()}
    if args.dry_run:
        return row
    sampler = SAMPLER["now"] = Sampler()
    sampler.start()
    row["load_before"] = os.getloadavg()[0]
    run = exprssl.benchmark(str(data), out=str(out), **opts)
    with sampler.stage("report"):
        t0 = time.perf_counter()
        write_report(run.out, main_metric=run.manifest.setting("main_metric"))
        report_s = time.perf_counter() - t0
    sampler.halt.set()
    sampler.join()
    SAMPLER["now"] = None
    row["load_after"] = os.getloadavg()[0]
    row["seconds"] = {**run.manifest.timings_s, "report": round(report_s, 2)}
    row["peak_rss_mb"] = sampler.peaks()
    row["estimate"] = run.manifest.estimate
    row["cells"] = per_approach(run.out)
    return row


def per_approach(out: Path) -> dict:
    """Per approach: its cells' total seconds, and at the largest fraction the mean seconds of
    a cell and its labelled profiles."""
    import pandas as pd

    tuning = pd.read_csv(out / "tuning.csv")
    results = pd.read_csv(out / "results.csv")
    labelled = results.groupby("fraction")["n_labelled"].mean()
    top = tuning["fraction"].max()
    rows = {}
    for name, part in tuning.groupby("approach"):
        last = part[np.isclose(part["fraction"], top)]
        rows[name] = {
            "total_s": float(part["seconds"].sum()),
            "cell_s_at_top": float(last["seconds"].mean()),
            "labelled_at_top": float(labelled.loc[top]),
        }
    return rows


# --------------------------------------------------------------------------- growth
def exponent(xs, ys) -> float | None:
    """The slope of log y on log x (least squares); None below two distinct sizes."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    keep = (xs > 0) & (ys > 0)
    if len(np.unique(xs[keep])) < 2:
        return None
    return float(np.polyfit(np.log(xs[keep]), np.log(ys[keep]), 1)[0])


def growth(rows: list[dict]) -> dict:
    """Exponents in n per approach (cell at the top fraction vs its labelled profiles) and per
    stage (wall seconds vs cohort size)."""
    measured = [r for r in rows if "seconds" in r]
    approaches = sorted({a for r in measured for a in r["cells"]})
    out = {"approaches": {}, "stages": {}}
    for a in approaches:
        pts = [(r["cells"][a]["labelled_at_top"], r["cells"][a]["cell_s_at_top"]) for r in measured]
        out["approaches"][a] = exponent(*zip(*pts, strict=True)) if pts else None
    for stage in STAGES:
        pts = [(r["n"], r["seconds"].get(stage, 0)) for r in measured]
        out["stages"][stage] = exponent(*zip(*pts, strict=True)) if pts else None
    return out


def extrapolate(rows: list[dict], grown: dict) -> list[str]:
    """The paper's setting from the largest measured size: each approach's top-fraction cell
    grown by its exponent in n and linearly in genes; the transfer scenario's pretraining (one
    model per method on 53,282 ARCHS4 profiles) linearly in profiles and genes."""
    measured = [r for r in rows if "seconds" in r]
    if not measured:
        return []
    big = max(measured, key=lambda r: r["n"])
    genes = PAPER["genes"] / big["genes"]
    lines = [
        f"extrapolated from n = {big['n']:,} x {big['genes']:,} genes to "
        f"{PAPER['n']:,} profiles x {PAPER['genes']:,} genes (approaches on the genes: linear in "
        "genes; measured exponents in n; worker-seconds, one core each):"
    ]
    for a, b in grown["approaches"].items():
        c = big["cells"][a]
        n_top = c["labelled_at_top"] * PAPER["n"] / big["n"]
        if b is None:
            continue
        on_genes = a.endswith("+finetune") or a in GENE_APPROACHES  # the rest: embeddings, PCA
        s = c["cell_s_at_top"] * (n_top / c["labelled_at_top"]) ** b * (genes if on_genes else 1)
        lines.append(f"  {a}: one cell at {n_top:,.0f} labels ~ {hours(s)} (exponent {b:.2f})")
    pre = big["seconds"].get("pretraining", 0.0)
    per_model = pre / max(1, big["plan"]["pretrainings"]) if pre else 0.0
    pool = big["n"] * 0.8  # the default protocol's pool: every non-test profile
    if per_model:
        s = per_model * PAPER["archs4"] / pool * genes
        lines.append(
            f"  ARCHS4 -> TCGA: pretraining one model on {PAPER['archs4']:,} profiles ~ "
            f"{hours(s)} (linear in profiles and genes, same epochs)"
        )
    return lines


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


# --------------------------------------------------------------------------- printing
def print_rows(rows: list[dict], grown: dict) -> None:
    for r in rows:
        print(f"\n== n = {r['n']:,} x {r['genes']:,} genes: the plan before the run")
        print("\n".join(r["lines"]))
        if "seconds" not in r:
            continue
        print(f"load average {r['load_before']:.1f} before, {r['load_after']:.1f} after")
        print(f"{'stage':<14}{'seconds':>10}{'estimated':>12}{'range':>20}{'peak RSS MB':>13}")
        for stage in STAGES:
            est = r["estimate"].get("stages", {}).get(stage, {})
            rng = f"{est.get('low_s', 0):.0f}-{est.get('high_s', 0):.0f}" if est else ""
            peak = r["peak_rss_mb"].get(stage)
            print(
                f"{stage:<14}{r['seconds'].get(stage, 0):>10.1f}"
                f"{est.get('estimated_s', float('nan')):>12.1f}{rng:>20}"
                f"{'(in pretraining)' if peak is None else f'{peak:.0f}':>13}"
            )
        print(f"{'total':<14}{r['seconds']['total']:>10.1f}")
        print(f"{'approach':<24}{'cells s':>10}{'estimated':>11}{'cell s @top':>13}{'labels':>8}")
        est = r["estimate"].get("approaches", {})
        for a, c in sorted(r["cells"].items(), key=lambda kv: -kv[1]["total_s"]):
            print(
                f"{a:<24}{c['total_s']:>10.1f}{est.get(a, {}).get('estimated_s', 0):>11.1f}"
                f"{c['cell_s_at_top']:>13.2f}{c['labelled_at_top']:>8.0f}"
            )
    if any("seconds" in r for r in rows):
        print("\ngrowth exponents in n (log-log least squares over the sizes):")
        for kind in ("approaches", "stages"):
            for name, b in grown[kind].items():
                print(f"  {name}: {'n/a (one size)' if b is None else f'{b:.2f}'}")
        print("\n".join(extrapolate(rows, grown)))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="1000,3000,9349", help="cohort sizes (profiles)")
    p.add_argument("--genes", type=int, default=20_000)
    p.add_argument("--classes", type=int, default=PAPER["classes"])
    p.add_argument("--methods", default=None, help=f"default: {DEFAULT_METHODS} (quick: scarf)")
    p.add_argument("--baselines", default=None, help="default: the default baselines")
    p.add_argument("--fractions", default=None)
    p.add_argument("--splits", type=int, default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="a restricted run (see above)")
    p.add_argument("--dry-run", action="store_true", help="the plans only; nothing trained")
    p.add_argument("--out", default=None, help="keep the cohorts and benchmarks here")
    p.add_argument("--json", default=None, help="write every number to this file")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    instrument()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [run_size(n, args, work) for n in sizes]
    grown = growth(rows)
    print_rows(rows, grown)
    result = {"rows": rows, "growth": grown, "extrapolation": extrapolate(rows, grown)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
