"""Stage 7, which genes carry the prediction: per-class gene attributions of the best SSL
approach and the best baseline (and the best linear baseline, the reference for overlap) of
each label fraction, one re-fit per (split, fraction) on that fraction's seed-0 labelled subset
with the hyperparameters its cell chose (``tuning.csv``), written to ``attributions.csv``.

Each approach is explained by its learner's ``explain`` capability (its SSL head in
``ssl_heads``, its baseline in ``baselines/``; ``explainers``): networks (a fine-tuned encoder +
head, an encoder + logistic probe, the MLP baseline) by integrated gradients over the split's
test samples of each class (at most ``MAX_SAMPLES`` per split, in bounded batches), linear
models by their coefficients on the same standardised genes (PCA + logistic regression mapped
back through the loadings). Every fraction: "with few labels, does the model lean on the same
genes?" is the question; the cost is one fit per chosen approach, split and fraction (resumable
on each). A learner that cannot be attributed (XGBoost, the random-encoder control) says why;
the manifest keeps the reason and the report prints it.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..splits import label_fraction_subsets
from ..utils import atomic_path
from .baselines import BASELINES
from .explainers import AttributionTask as AttributionTask  # re-exported: tests build one
from .explainers import Explainer
from .heads import HeadRecipe
from .planning import carve_validation
from .schema import ATTRIBUTION_COLUMNS, AttributionInfo, Layout, method_and_head
from .ssl_heads import SSL_HEADS

log = logging.getLogger("exprssl")
MAX_SAMPLES = 256  # test rows per split explained by integrated gradients (a stratified subset)
SEED = 0  # the label subset (and head initialisation) re-fitted: the seed-0 cell's


def learner(approach: str) -> Explainer | None:
    """The registered learner of an approach (its SSL head or its baseline); None if unknown."""
    return _registered(method_and_head(approach)[1])


def _registered(head: str) -> Explainer | None:
    return SSL_HEADS.get(head) or BASELINES.get(head)


def _explainable(approach: str, baselines: list[str]) -> bool:
    """Attributable, and an SSL approach or one of the run's baselines."""
    found = learner(approach)
    ssl = method_and_head(approach)[1] in SSL_HEADS
    return found is not None and found.attributable and (ssl or approach in baselines)


def _linear(approach: str) -> bool:
    found = learner(approach)
    return found is not None and found.linear


def not_attributable(approaches) -> dict[str, str]:
    """Why each of ``approaches`` that its learner cannot attribute has no gene table."""
    found = {a: learner(a) for a in dict.fromkeys(approaches)}
    return {a: x.why_not for a, x in found.items() if x is not None and not x.attributable}


def chosen_approaches(summary: pd.DataFrame, baselines: list[str]) -> dict[float, list[str]]:
    """Per fraction (ascending), the approaches to explain there: the best SSL approach, the
    best baseline and the best linear baseline, by mean (as the verdicts pick them)."""
    if summary.empty:
        return {}
    return {
        float(f): _chosen_at(part, baselines) for f, part in summary.groupby("fraction", sort=True)
    }


def _chosen_at(last: pd.DataFrame, baselines: list[str]) -> list[str]:
    picked = [
        last.loc[last[col], "approach"].iloc[0]
        for col in ("best_ssl", "best_baseline")
        if col in last and last[col].any()
    ]
    linear = last[np.array([_linear(a) for a in last["approach"]], dtype=bool)]
    if len(linear):
        picked.append(linear.loc[linear["mean"].idxmax(), "approach"])
    return [a for a in dict.fromkeys(picked) if _explainable(a, baselines)]


def explain_split(task: AttributionTask) -> dict[str, np.ndarray]:
    """Per approach of the task: (n_classes, n_genes) attributions on the standardised genes,
    each by its registered learner's ``explain``."""
    return {
        name: _registered(head).explain(task, method, params)
        for name, method, head, params in task.approaches
    }


def attribution_tasks(
    cfg,
    cohort,
    plan,
    artefacts,
    out: Path,
    chosen_by_fraction: dict[float, list[str]],
    done: set[tuple[str, int, float]],
) -> list[AttributionTask]:
    """One task per (split, fraction) with the chosen approaches it still lacks."""
    tuning = pd.read_csv(Layout(out).tuning)
    tuning = tuning[tuning["seed"] == SEED]
    chosen = {
        (int(r.split), _nearest(plan.fractions, r.fraction), r.approach): json.loads(r.params)
        for r in tuning.itertuples()
    }
    recipe = HeadRecipe.check(cfg.finetune)
    rng = np.random.default_rng(cfg.split_seed)
    tasks = []
    for s in plan.splits:
        # the same explained test rows for every fraction of a split
        rows = (
            s.test
            if len(s.test) <= MAX_SAMPLES
            else np.sort(rng.choice(s.test, MAX_SAMPLES, replace=False))
        )
        subsets = label_fraction_subsets(cohort.y[s.finetune], plan.fractions, seed=SEED)
        for fraction, approaches in chosen_by_fraction.items():
            f = _nearest(plan.fractions, fraction)
            todo = [
                (a, *method_and_head(a), chosen[s.index, f, a])
                for a in approaches
                if (a, s.index, f) not in done and (s.index, f, a) in chosen
            ]
            if todo:
                tasks.append(
                    _task(cfg, cohort, artefacts, recipe, s, f, todo, s.finetune[subsets[f]], rows)
                )
    return tasks


def _task(cfg, cohort, artefacts, recipe, s, fraction, todo, lab, rows) -> AttributionTask:
    """The task of one split ``s`` and fraction: its labelled rows, features and models."""
    return AttributionTask(
        split=s.index,
        fraction=fraction,
        approaches=todo,
        lab=lab,
        val=lab[carve_validation(cohort.y[lab], SEED)],
        rows=rows,
        y=cohort.y,
        n_classes=len(cohort.classes),
        features=artefacts["features"][s.index],
        models={m: d for (k, m, p), d in artefacts["models"].items() if k == s.index and p == 0},
        encoder=cfg.encoder,
        recipe=recipe,
        seed=SEED,
    )


def _nearest(fractions: list[float], fraction: float) -> float:
    """The plan's fraction closest to ``fraction`` (a float read back from a CSV)."""
    return min(fractions, key=lambda f: abs(f - float(fraction)))


def kept_attributions(path: Path, n_classes: int) -> pd.DataFrame:
    """The sound records of an earlier ``attributions.csv``: a file that does not parse, lacks
    the columns (0.3 development builds had no fraction) or rows of a (approach, split,
    fraction) record that are missing (each of the ``n_classes`` classes holds every gene of the
    record), duplicated or not finite (a copy cut short, a full disk) lose those records, which
    are computed again, said in one line."""
    empty = pd.DataFrame(columns=ATTRIBUTION_COLUMNS)
    if not path.exists():
        return empty
    try:
        old = pd.read_csv(path, dtype={"gene": str, "class": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        log.warning("%s: unreadable (%s); every attribution is computed again", path, e)
        return empty
    if not set(ATTRIBUTION_COLUMNS) <= set(old.columns):
        missing = sorted(set(ATTRIBUTION_COLUMNS) - set(old.columns))
        log.warning("%s: no %s column; every attribution is computed again", path, missing[0])
        return empty
    record = ["approach", "split", "fraction"]
    for col in ("split", "fraction", "attribution", "rank"):
        old[col] = pd.to_numeric(old[col], errors="coerce")
    sound = old[ATTRIBUTION_COLUMNS].notna().all(axis=1) & np.isfinite(old["attribution"])
    sound &= ~old.duplicated(["gene", "class", *record], keep=False)
    groups = old.assign(sound=sound).groupby(record, dropna=False)
    whole = (
        groups["sound"].transform("all")
        & (groups["class"].transform("nunique") == n_classes)
        & (groups["gene"].transform("nunique") * n_classes == groups["gene"].transform("size"))
    )
    lost = old.loc[~whole, record].drop_duplicates()
    if len(lost):
        log.warning(
            "%s: %d damaged or incomplete attribution record(s) (approach, split, fraction) "
            "computed again",
            path,
            len(lost),
        )
    return old[whole].reset_index(drop=True)


def attribution_stage(
    cfg, cohort, plan, summary: pd.DataFrame, artefacts, out: Path, jobs: int
) -> AttributionInfo:
    """Compute the attributions still missing and write ``attributions.csv`` (kept rows of
    (approach, fraction) pairs still chosen, plus the new ones); a complete file is left alone.
    A file without a fraction column (0.3 development builds) is recomputed. Returns what the
    manifest records (the fractions, the approaches chosen at each, the largest fraction with its
    approaches and linear reference, which the report shows; samples, seconds)."""
    from ..attributions import attribution_table

    t0 = time.perf_counter()
    by_fraction = {
        _nearest(plan.fractions, f): a for f, a in chosen_approaches(summary, cfg.baselines).items()
    }
    path = Layout(out).attributions
    old = kept_attributions(path, len(cohort.classes))
    old = old.assign(fraction=[_nearest(plan.fractions, f) for f in old["fraction"]])
    wanted = {(a, f) for f, approaches in by_fraction.items() for a in approaches}
    pairs = zip(old["approach"], old["fraction"], strict=True)
    old = old[np.array([pair in wanted for pair in pairs], dtype=bool)]
    done = set(zip(old["approach"], old["split"].astype(int), old["fraction"], strict=True))
    tasks = attribution_tasks(cfg, cohort, plan, artefacts, out, by_fraction, done)
    tables = [old] if len(old) else []
    classes = cohort.classes.astype(str)
    split_genes = functools.cache(lambda split: _split_genes(out, split))  # read once per split
    for task, values in _results(tasks, jobs):
        for a, v in values.items():
            method = method_and_head(a)[0]
            genes = (
                _model_genes(task.models[method])
                if task.is_given(method)
                else split_genes(task.split)
            )  # each split's preprocessing keeps its own
            tables.append(attribution_table(v, genes, classes, a, task.split, task.fraction))
    if tasks:
        table = pd.concat(tables, ignore_index=True).sort_values(
            ["approach", "fraction", "split", "class", "rank"]
        )
        with atomic_path(path) as tmp:
            table[ATTRIBUTION_COLUMNS].to_csv(tmp, index=False, float_format="%.6g")
    fraction = max(by_fraction, default=1.0)
    approaches = by_fraction.get(fraction, [])
    reference = next((a for a in approaches if _linear(a)), None)
    return AttributionInfo(
        fractions=sorted(by_fraction),
        by_fraction={f"{f:g}": a for f, a in sorted(by_fraction.items())},
        fraction=fraction,
        approaches=approaches,
        reference=reference,
        max_samples_per_split=MAX_SAMPLES,
        computed=sum(len(t.approaches) for t in tasks),
        seconds=round(time.perf_counter() - t0, 2),
        not_attributable=not_attributable(summary.get("approach", [])),
    )


def _split_genes(out: Path, split: int) -> list[str]:
    """The genes of a split's preprocessed features (``top_k_variance`` picks them per pool)."""
    from ..preprocessing import Preprocessor

    return list(Preprocessor.load(Layout(out).preprocessor(split)).genes_)


def _model_genes(directory: str) -> list[str]:
    """A given model's genes, in the order of its inputs."""
    return [g for g in (Path(directory) / "genes.txt").read_text().splitlines() if g]


def _results(tasks: list[AttributionTask], jobs: int):
    """(task, values) pairs, from worker processes in the order they finish."""
    from .pool import run_tasks

    by_key = {(t.split, t.fraction): t for t in tasks}
    for key, values in run_tasks(_tagged, tasks, jobs):
        yield by_key[key], values


def _tagged(task: AttributionTask) -> tuple[tuple[int, float], dict[str, np.ndarray]]:
    return (task.split, task.fraction), explain_split(task)
