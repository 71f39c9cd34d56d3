"""Stage 7, which genes carry the prediction: per-class gene attributions of the best SSL
approach and the best baseline (and the best linear baseline, the reference for overlap) of
each label fraction, one re-fit per (split, fraction) on that fraction's seed-0 labelled subset
with the hyperparameters its cell chose (``tuning.csv``), written to ``attributions.csv``.

Networks (a fine-tuned encoder + head, an encoder + logistic probe, the MLP baseline) are
explained by integrated gradients (``exprssl.attributions``) over the split's test samples of
each class (at most ``MAX_SAMPLES`` per split, in bounded batches); linear models by their
coefficients on the same standardised genes (PCA + logistic regression mapped back through the
loadings). Every fraction: "with few labels, does the model lean on the same genes?" is the
question; the cost is one fit per chosen approach, split and fraction (resumable on each).
XGBoost has no per-class gene attributions here and is skipped (the report says so).
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..splits import label_fraction_subsets
from ..utils import atomic_path
from .heads import HeadRecipe
from .planning import carve_validation
from .schema import (
    ATTRIBUTION_COLUMNS,
    GENES,
    PCA_SCORES,
    POOL,
    AttributionInfo,
    FeatureKey,
    Features,
    Layout,
)

LINEAR_BASELINES = ("elasticnet", "logreg", "pca_logreg")  # explained by their coefficients
EXPLAINABLE_BASELINES = (*LINEAR_BASELINES, "mlp")
MAX_SAMPLES = 256  # test rows per split explained by integrated gradients (a stratified subset)
SEED = 0  # the label subset (and head initialisation) re-fitted: the seed-0 cell's


@dataclass
class AttributionTask:
    """Plain data for one split: runs the same in a worker process or inline."""

    split: int
    fraction: float
    approaches: list[tuple[str, str, str, dict[str, Any]]]  # (name, method, head, chosen params)
    lab: np.ndarray
    val: np.ndarray
    rows: np.ndarray  # the test rows explained
    y: np.ndarray
    n_classes: int
    features: Features  # the split's derived features (GENES, POOL, PCA, embeddings)
    models: dict[str, str] = field(default_factory=dict)  # SSL method or given model -> directory
    encoder: dict[str, Any] = field(default_factory=dict)
    recipe: HeadRecipe = field(default_factory=HeadRecipe)


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
    linear = last[last["approach"].isin(LINEAR_BASELINES)]
    if len(linear):
        picked.append(linear.loc[linear["mean"].idxmax(), "approach"])
    explainable = [
        a
        for a in dict.fromkeys(picked)
        if "+" in a or (a in EXPLAINABLE_BASELINES and a in baselines)
    ]
    return explainable


def explain_split(task: AttributionTask) -> dict[str, np.ndarray]:
    """Per approach of the task: (n_classes, n_genes) attributions on the standardised genes."""
    import torch

    from ..attributions import (
        integrated_gradients,
        logistic_weights,
        pca_gene_weights,
        probe_network,
        stacked_member,
    )
    from ..encoders import MLPEncoder
    from ..model import SSLModel
    from .baselines.elasticnet import _fit as fit_elasticnet
    from .features import fit_pool_pca
    from .learners import fit_logistic, train_torch

    out = {}
    y_lab, y_rows = task.y[task.lab], task.y[task.rows]
    for name, method, head, params in task.approaches:
        given = is_given(task.features, method)  # a pretrained model: its own inputs and genes
        X = np.load(task.features[FeatureKey.genes(method) if given else GENES], mmap_mode="r")
        X_lab, X_rows = np.asarray(X[task.lab]), np.asarray(X[task.rows])
        if head == "linear_probe":
            model = SSLModel.load(task.models[method])
            key = FeatureKey.embedding(method) if given else FeatureKey.embedding(method, 0)
            Z = np.load(task.features[key], mmap_mode="r")
            W, b = logistic_weights(
                fit_logistic(np.asarray(Z[task.lab]), y_lab, params, SEED), task.n_classes
            )
            net = probe_network(model.method_.encoder, W, b)
        elif head in ("finetune", "mlp"):
            torch.manual_seed(SEED)
            encoder = (
                SSLModel.load(task.models[method]).method_.encoder
                if head == "finetune"
                else MLPEncoder(X.shape[1], task.encoder["hidden_dims"], task.encoder["dropout"])
            )
            net = stacked_member(train_torch(X_lab, y_lab, encoder, params, task))
        elif head in ("logreg", "elasticnet"):
            fit = fit_logistic if head == "logreg" else fit_elasticnet
            out[name] = logistic_weights(fit(X_lab, y_lab, params, SEED), task.n_classes)[0]
            continue
        elif head == "pca_logreg":
            pca = fit_pool_pca(np.load(task.features[POOL]))  # the fit its features came from
            F = np.load(task.features[PCA_SCORES], mmap_mode="r")
            W, _ = logistic_weights(
                fit_logistic(np.asarray(F[task.lab]), y_lab, params, SEED), task.n_classes
            )
            out[name] = pca_gene_weights(W[:, : params.get("k", W.shape[1])], pca.components_)
            continue
        else:
            continue
        out[name] = integrated_gradients(net, X_rows, task.n_classes, y_rows)
    return out


def is_given(features: Features, method: str) -> bool:
    """Whether ``method`` is a given pretrained model (it has its own inputs, ``X:<name>``)."""
    return FeatureKey.genes(method) in features


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
                (a, *_method_head(a), chosen[s.index, f, a])
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
    )


def _method_head(approach: str) -> tuple[str, str]:
    method, _, head = approach.partition("+")
    return method, head or method


def _nearest(fractions: list[float], fraction: float) -> float:
    """The plan's fraction closest to ``fraction`` (a float read back from a CSV)."""
    return min(fractions, key=lambda f: abs(f - float(fraction)))


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
    old = pd.read_csv(path, dtype={"gene": str, "class": str}) if path.exists() else None
    if old is None or "fraction" not in old:
        old = pd.DataFrame(columns=ATTRIBUTION_COLUMNS)
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
            method = _method_head(a)[0]
            genes = (
                _model_genes(task.models[method])
                if is_given(task.features, method)
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
    reference = next((a for a in approaches if a in LINEAR_BASELINES), None)
    return AttributionInfo(
        fractions=sorted(by_fraction),
        by_fraction={f"{f:g}": a for f, a in sorted(by_fraction.items())},
        fraction=fraction,
        approaches=approaches,
        reference=reference,
        max_samples_per_split=MAX_SAMPLES,
        computed=sum(len(t.approaches) for t in tasks),
        seconds=round(time.perf_counter() - t0, 2),
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
