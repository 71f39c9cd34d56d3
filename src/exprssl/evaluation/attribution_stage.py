"""Stage 7, which genes carry the prediction: per-class gene attributions of the best SSL
approach and the best baseline (and the best linear baseline, the reference for overlap) at the
largest label fraction, one re-fit per split on the seed-0 labelled subset with the
hyperparameters its cell chose (``tuning.csv``), written to ``attributions.csv``.

Networks (a fine-tuned encoder + head, an encoder + logistic probe, the MLP baseline) are
explained by integrated gradients (``exprssl.attributions``) over the split's test samples of
each class (at most ``MAX_SAMPLES`` per split, in bounded batches); linear models by their
coefficients on the same standardised genes (PCA + logistic regression mapped back through the
loadings). One fraction only: the file's schema has no fraction column, and "with all my labels,
on which genes?" is the question; the extra cost is one fit per chosen approach and split.
XGBoost has no per-class gene attributions here and is skipped (the report says so).
"""

from __future__ import annotations

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
from .schema import FeatureKey, Layout

LINEAR_BASELINES = ("elasticnet", "logreg", "pca_logreg")  # explained by their coefficients
EXPLAINABLE_BASELINES = (*LINEAR_BASELINES, "mlp")
MAX_SAMPLES = 256  # test rows per split explained by integrated gradients (a stratified subset)
SEED = 0  # the label subset (and head initialisation) re-fitted: the seed-0 cell's


@dataclass
class AttributionTask:
    """Plain data for one split: runs the same in a worker process or inline."""

    split: int
    approaches: list[tuple[str, str, str, dict[str, Any]]]  # (name, method, head, chosen params)
    lab: np.ndarray
    val: np.ndarray
    rows: np.ndarray  # the test rows explained
    y: np.ndarray
    n_classes: int
    features: dict[str, str]  # feature key -> .npy path ("X", "pool", "pca", "Z:<method>:0")
    models: dict[str, str] = field(default_factory=dict)  # SSL method or given model -> directory
    encoder: dict[str, Any] = field(default_factory=dict)
    recipe: HeadRecipe = field(default_factory=HeadRecipe)


def chosen_approaches(summary: pd.DataFrame, baselines: list[str]) -> tuple[float, list[str]]:
    """(the largest fraction, the approaches to explain there): the best SSL approach, the best
    baseline and the best linear baseline, by mean (as the verdicts pick them)."""
    if summary.empty:
        return 1.0, []
    last = summary[np.isclose(summary["fraction"], summary["fraction"].max())]
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
    return float(last["fraction"].iloc[0]), explainable


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
    from .features import PCA_MAX_COMPONENTS
    from .learners import fit_logistic, train_torch

    out = {}
    y_lab, y_rows = task.y[task.lab], task.y[task.rows]
    for name, method, head, params in task.approaches:
        given = is_given(task.features, method)  # a pretrained model: its own inputs and genes
        X = np.load(task.features[str(FeatureKey("X", method)) if given else "X"], mmap_mode="r")
        X_lab, X_rows = np.asarray(X[task.lab]), np.asarray(X[task.rows])
        if head == "linear_probe":
            model = SSLModel.load(task.models[method])
            key = FeatureKey.embedding(method) if given else FeatureKey.embedding(method, 0)
            Z = np.load(task.features[str(key)], mmap_mode="r")
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
            from sklearn.decomposition import PCA

            pool = np.load(task.features["pool"])
            n = int(min(PCA_MAX_COMPONENTS, pool.shape[0] - 1, pool.shape[1]))
            pca = PCA(n_components=n, random_state=0).fit(pool)  # as features.pca_scores
            F = np.load(task.features["pca"], mmap_mode="r")
            W, _ = logistic_weights(
                fit_logistic(np.asarray(F[task.lab]), y_lab, params, SEED), task.n_classes
            )
            out[name] = pca_gene_weights(W[:, : params.get("k", W.shape[1])], pca.components_)
            continue
        else:
            continue
        out[name] = integrated_gradients(net, X_rows, task.n_classes, y_rows)
    return out


def is_given(features: dict[str, str], method: str) -> bool:
    """Whether ``method`` is a given pretrained model (its inputs are ``X:<name>``)."""
    return str(FeatureKey("X", method)) in features


def attribution_tasks(
    cfg,
    cohort,
    plan,
    artefacts,
    out: Path,
    fraction: float,
    approaches: list[str],
    done: set[tuple[str, int]],
) -> list[AttributionTask]:
    """One task per split with the chosen approaches it still lacks."""
    tuning = pd.read_csv(Layout(out).tuning)
    tuning = tuning[(tuning["seed"] == SEED) & np.isclose(tuning["fraction"], fraction)]
    chosen = {(int(r.split), r.approach): json.loads(r.params) for r in tuning.itertuples()}
    recipe = HeadRecipe.check(cfg.finetune)
    rng = np.random.default_rng(cfg.split_seed)
    tasks = []
    for s in plan.splits:
        todo = [
            (a, *_method_head(a), chosen[s.index, a])
            for a in approaches
            if (a, s.index) not in done and (s.index, a) in chosen
        ]
        if not todo:
            continue
        subsets = label_fraction_subsets(cohort.y[s.finetune], plan.fractions, seed=SEED)
        lab = s.finetune[subsets[_nearest(plan.fractions, fraction)]]
        rows = (
            s.test
            if len(s.test) <= MAX_SAMPLES
            else np.sort(rng.choice(s.test, MAX_SAMPLES, replace=False))
        )
        tasks.append(
            AttributionTask(
                split=s.index,
                approaches=todo,
                lab=lab,
                val=lab[carve_validation(cohort.y[lab], SEED)],
                rows=rows,
                y=cohort.y,
                n_classes=len(cohort.classes),
                features=artefacts["features"][s.index],
                models={
                    m: d for (k, m, p), d in artefacts["models"].items() if k == s.index and p == 0
                },
                encoder=cfg.encoder,
                recipe=recipe,
            )
        )
    return tasks


def _method_head(approach: str) -> tuple[str, str]:
    method, _, head = approach.partition("+")
    return method, head or method


def _nearest(fractions: list[float], fraction: float) -> float:
    return min(fractions, key=lambda f: abs(f - fraction))


def attribution_stage(
    cfg, cohort, plan, summary: pd.DataFrame, artefacts, out: Path, jobs: int
) -> dict[str, Any]:
    """Compute the attributions still missing and write ``attributions.csv`` (kept rows of
    approaches still chosen, plus the new ones); a complete file is left alone. Returns what the
    manifest records (fraction, approaches, reference, samples, seconds)."""
    from ..attributions import COLUMNS, attribution_table

    t0 = time.perf_counter()
    fraction, approaches = chosen_approaches(summary, cfg.baselines)
    path = Layout(out).attributions
    old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=COLUMNS)
    old = old[old["approach"].isin(approaches)]
    done = set(zip(old["approach"], old["split"].astype(int), strict=True))
    tasks = attribution_tasks(cfg, cohort, plan, artefacts, out, fraction, approaches, done)
    tables = [old] if len(old) else []
    classes = cohort.classes.astype(str)
    for task, values in _results(tasks, jobs):
        for a, v in values.items():
            method = _method_head(a)[0]
            genes = (
                _model_genes(task.models[method])
                if is_given(task.features, method)
                else _split_genes(out, task.split)
            )  # each split's preprocessing keeps its own
            tables.append(attribution_table(v, genes, classes, a, task.split))
    if tasks:
        table = pd.concat(tables, ignore_index=True).sort_values(
            ["approach", "split", "class", "rank"]
        )
        with atomic_path(path) as tmp:
            table[COLUMNS].to_csv(tmp, index=False, float_format="%.6g")
    reference = next((a for a in approaches if a in LINEAR_BASELINES), None)
    return {
        "fraction": fraction,
        "approaches": approaches,
        "reference": reference,
        "max_samples_per_split": MAX_SAMPLES,
        "computed": sum(len(t.approaches) for t in tasks),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _split_genes(out: Path, split: int) -> list[str]:
    """The genes of a split's preprocessed features (``top_k_variance`` picks them per pool)."""
    from ..preprocessing import Preprocessor

    return list(Preprocessor.load(Layout(out).cache(split) / "preprocessor.json").genes_)


def _model_genes(directory: str) -> list[str]:
    """A given model's genes, in the order of its inputs."""
    return [g for g in (Path(directory) / "genes.txt").read_text().splitlines() if g]


def _results(tasks: list[AttributionTask], jobs: int):
    """(task, values) pairs, from worker processes in the order they finish."""
    from .pool import run_tasks

    by_split = {t.split: t for t in tasks}
    for split, values in run_tasks(_tagged, tasks, jobs):
        yield by_split[split], values


def _tagged(task: AttributionTask) -> tuple[int, dict[str, np.ndarray]]:
    return task.split, explain_split(task)
