"""The stages that train and score (pretraining, evaluation, summary) and ``run_benchmark``,
which runs every stage in order (see ``exprssl.evaluation.protocol`` for the overview)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..model_layout import MODEL_FILES, ModelLayout
from ..outputs import output_lock
from ..splits import label_fraction_subsets
from ..utils import atomic_save, atomic_savez, atomic_write_text
from .attribution_stage import attribution_stage
from .cache import check_benchmark_output, prepare_output
from .cells import GroupJob, evaluate_group
from .cluster import connect
from .cohort import Cohort, load_cohort
from .config import BenchmarkConfig, cell_devices, resolve_config, worker_count
from .estimate import RunPlan, plan_work
from .features import write_features
from .heads import HeadRecipe
from .manifest import write_manifest
from .models import PretrainedModel, load_models, write_model_features
from .planning import Plan, Split, carve_validation, plan_benchmark
from .pool import Progress, run_tasks
from .results import ResultStore
from .scaling import scale_pool
from .schema import GENES, POOL, POOL_RAW, FeatureKey, Features, Layout, Manifest
from .stats import best_approach, summarize

log = logging.getLogger("exprssl")


@dataclass
class PretrainTask:
    model_dir: str
    method: str
    pool: str  # .npy of the pool's raw values on the shared genes
    genes: list[str]
    preprocessor: dict
    options: dict
    seed: int


def pretrain_one(task: PretrainTask) -> str:
    import anndata as ad

    from ..model import SSLModel
    from ..preprocessing import Preprocessor

    pool = ad.AnnData(np.load(task.pool), var=pd.DataFrame(index=task.genes))
    model = SSLModel(
        task.method,
        method_params=task.options["method_params"],
        preprocessor=Preprocessor.from_dict(task.preprocessor),
        seed=task.seed,
        **task.options["train"],
    )
    model.fit(pool)
    model.save(task.model_dir, overwrite=True)
    return task.model_dir


def pretrain_stage(
    cfg: BenchmarkConfig,
    cohort: Cohort,
    plan: Plan,
    out: Path,
    jobs: int,
    progress: Callable[[int], None] = lambda n: None,
    given: list[PretrainedModel] = (),
) -> dict[str, Any]:
    """Per split: preprocessing fit on the pool; every SSL model pretrained (or loaded from
    ``models/``); features, embeddings, PCA scores and random-encoder features written to
    ``cache/`` for the workers; each ``given`` model's inputs and embeddings (once, for every
    split). Returns the feature paths and model directories."""
    features: dict[int, Features] = {}
    models: dict[tuple[int, str, int], str] = {}
    tasks, timings, damaged = [], {}, 0
    for s in plan.splits:
        features[s.index], prep = _prepare_split(cfg, cohort, s, out)
        for method in cfg.methods:
            for p in range(cfg.pretrain_seeds):
                mdir = Layout(out).model(s.index, method, p)
                models[s.index, method, p] = str(mdir)
                cached = _cached_model(mdir)  # pretrained by an earlier run
                damaged += cached == "damaged"
                if cached != "usable":
                    tasks.append(
                        PretrainTask(
                            str(mdir),
                            method,
                            features[s.index][POOL_RAW],
                            list(cohort.adata.var_names),
                            prep.to_dict(),
                            _pretrain_options(cfg, method),
                            cfg.split_seed + s.index * 1000 + p,
                        )
                    )
    if damaged:
        log.warning(
            "%s: %d pretrained model(s) damaged (weights or files that do not match their "
            "card): pretrained again",
            Layout(out).out / "models",
            damaged,
        )
    t0 = time.perf_counter()
    for _ in run_tasks(pretrain_one, tasks, jobs):
        progress(1)
    timings["pretraining"] = time.perf_counter() - t0
    for s in plan.splits:
        write_features(cfg, cohort, s, features[s.index], models, out)
    if given:
        write_model_features(cohort, list(given), out, features, plan.splits, cfg.pool_scaling)
        for s in plan.splits:
            for p in range(cfg.pretrain_seeds):
                models.update({(s.index, m.name, p): m.directory for m in given})
    return {"features": features, "models": models, "timings": timings, "n_pretrained": len(tasks)}


def _cached_model(directory: Path) -> str:
    """An earlier run's model in ``models/``: "usable", "missing" or "damaged" (cut short by a
    full disk, changed since: loading checks every file against the card's hashes); a cache,
    so a damaged one is pretrained again (the same seed: the same model) and replaced."""
    from ..errors import ExprsslError
    from ..model import SSLModel

    if not directory.exists():
        return "missing"
    if not ModelLayout(directory).is_model():  # its config garbled: the save would refuse it
        for name in MODEL_FILES:  # this run's own files only (anything else stays, and the
            (directory / name).unlink(missing_ok=True)  # save refuses the directory)
        return "damaged"
    try:
        SSLModel.load(directory)
    except (ExprsslError, OSError, ValueError, RuntimeError):  # torch's and safetensors' words
        return "damaged"
    return "usable"


def _prepare_split(cfg: BenchmarkConfig, cohort: Cohort, s: Split, out: Path):
    """The split's pool (raw, for pretraining) and every profile, preprocessed by a
    preprocessor fit on the pool, written to ``cache/split<k>/``; returns (feature paths,
    the fitted preprocessor)."""
    from ..preprocessing import Preprocessor

    cache = Layout(out).cache(s.index)
    cache.mkdir(parents=True, exist_ok=True)
    genes = list(cohort.adata.var_names)
    cohort_X, sources = scale_pool(  # each source on the cohort pool's scale (never the test's)
        cfg.pool_scaling,
        np.asarray(cohort.adata.X, dtype=np.float32),
        s.pool,
        [np.asarray(src.X, dtype=np.float32) for _, src, _ in cohort.sources],
        genes,
    )
    pool = np.concatenate([cohort_X[s.pool], *sources])
    prep = Preprocessor.from_options(cfg.preprocessing).fit(pool, genes=genes)
    atomic_save(cache / "pool_raw.npy", pool)
    atomic_save(cache / "pool.npy", prep.transform(pool, genes))
    atomic_save(cache / "X.npy", prep.transform(cohort_X, genes))
    prep.save(Layout(out).preprocessor(s.index))
    paths = {
        GENES: str(cache / "X.npy"),
        POOL: str(cache / "pool.npy"),
        POOL_RAW: str(cache / "pool_raw.npy"),
    }
    return paths, prep


def _pretrain_options(cfg: BenchmarkConfig, method: str) -> dict:
    return {
        "method_params": {**cfg.encoder, **cfg.method_options.get(method, {})},
        "train": {
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "patience": cfg.patience,
            "accelerator": cfg.accelerator,
            "progress": False,
        },
    }


def plan_jobs(
    cfg: BenchmarkConfig,
    cohort: Cohort,
    plan: Plan,
    store: ResultStore,
    artefacts: dict,
    devices: list[str] = ("cpu",),
) -> list[GroupJob]:
    """One job per (split, seed, fraction) with the approaches it still lacks; the jobs take
    ``devices`` in turn."""
    jobs = []
    recipe = HeadRecipe.check(cfg.finetune)
    for s in plan.splits:
        feats = artefacts["features"][s.index]
        for seed in range(cfg.seeds):
            subsets = label_fraction_subsets(cohort.y[s.finetune], plan.fractions, seed=seed)
            p = seed % cfg.pretrain_seeds
            # the cell's embeddings are this seed's pretrain seed's (a given model's are in feats)
            job_feats = {
                **feats,
                **{FeatureKey.embedding(m): feats[FeatureKey.embedding(m, p)] for m in cfg.methods},
            }
            for frac in plan.fractions:
                todo = [a for a in plan.approaches if not store.has(s.index, a, frac, seed)]
                if not todo:
                    continue
                lab = s.finetune[subsets[frac]]
                val = lab[carve_validation(cohort.y[lab], seed)]
                jobs.append(
                    GroupJob(
                        split=s.index,
                        seed=seed,
                        fraction=frac,
                        lab=lab,
                        val=val,
                        test=s.test,
                        y=cohort.y,
                        n_classes=len(cohort.classes),
                        approaches=todo,
                        classes=cohort.classes,
                        features=job_feats,
                        models={  # per-split SSL models and given models, by approach method
                            m: d
                            for (k, m, q), d in artefacts["models"].items()
                            if (k, q) == (s.index, p)
                        },
                        encoder=cfg.encoder,
                        recipe=recipe,
                        tune=cfg.tune,
                        metric=cfg.main_metric,
                        device=devices[len(jobs) % len(devices)],
                    )
                )
    return jobs


def evaluate_stage(
    jobs: list[GroupJob],
    store: ResultStore,
    n_jobs: int,
    progress: Callable[..., None] = lambda n, items=(): None,
    flush_every: float = 5.0,
) -> float:
    """Run the jobs in workers; the parent records each outcome and flushes the result files
    every few seconds (a killed run loses at most those cells, recomputed identically on resume)."""
    t0 = last = time.perf_counter()
    for outcomes in run_tasks(evaluate_group, jobs, n_jobs):
        store.add(outcomes)
        progress(len(outcomes), outcomes)
        if time.perf_counter() - last > flush_every:
            store.flush()
            last = time.perf_counter()
    store.flush()
    return time.perf_counter() - t0


def summarize_stage(
    cfg: BenchmarkConfig,
    cohort: Cohort,
    plan: Plan,
    store: ResultStore,
    out: Path,
    given: list[PretrainedModel] = (),
) -> pd.DataFrame:
    n_test = float(np.mean([len(s.test) for s in plan.splits]))
    summary = summarize(
        store.results(),
        store.predictions(),
        metric=cfg.main_metric,
        n_classes=len(cohort.classes),
        n_test_per_split=n_test,
        min_test_per_class=cfg.min_test_per_class,
        n_boot=cfg.bootstrap,
        given={m.name: m.method for m in given},
    )
    atomic_write_text(Layout(out).summary, summary.to_csv(index=False))
    _write_best_predictions(store, summary, cohort, out)
    return summary


def _write_best_predictions(
    store: ResultStore, summary: pd.DataFrame, cohort: Cohort, out: Path
) -> None:
    """Predictions of the best approach at the largest fraction, pooled over splits and seeds,
    for the confusion matrix."""
    if summary.empty:
        return
    last = summary[summary["fraction"] == summary["fraction"].max()].set_index("approach")
    top = last.loc[best_approach(last, last.index[last["excluded"].astype(bool)])]
    p = store.predictions()
    p = p[(p["approach"] == top.name) & np.isclose(p["fraction"], top["fraction"])]
    atomic_savez(
        Layout(out).best_predictions,
        y_true=cohort.classes[p["y_true"].to_numpy()].astype(str),
        y_pred=cohort.classes[p["y_pred"].to_numpy()].astype(str),
        classes=cohort.classes.astype(str),
        score=np.array(top["mean"]),
        title=np.array(
            f"{top.name}, {int(round(top['n_labelled']))} labelled "
            f"({top['fraction']:.0%}), all splits x seeds"
        ),
    )


@dataclass
class BenchmarkRun:
    out: Path
    results: pd.DataFrame
    summary: pd.DataFrame
    manifest: Manifest


def run_benchmark(
    cfg: BenchmarkConfig, *, progress: bool = True, client=None, dry_run: bool = False
) -> BenchmarkRun | RunPlan:
    """Run (or resume) the benchmark into ``cfg.out`` (the caller writes the report): every
    option checked before anything is read or written; ``progress``: a bar per stage, the plan
    above them; ``client``: a ``dask.distributed.Client`` to run on. Returns the output
    directory, every finished cell (``results``), the ``summary`` with paired verdicts and the
    ``manifest``; with ``dry_run``, after every check a run makes, the ``estimate.RunPlan``
    alone, nothing written."""
    t0 = time.perf_counter()
    cfg.validate()  # then the devices, the output path and the cluster's address: before any work
    devices = cell_devices(cfg)  # a GPU that is not there is refused here
    check_benchmark_output(cfg)
    cluster = connect(cfg.scheduler if client is None else client, cfg.out)
    cohort = load_cohort(cfg)
    given = load_models(cfg, cohort)  # refused here (names, cards, gene coverage), before any work
    cohort.fingerprint.update({f"model:{m.name}": m.weights_sha256 for m in given})
    cfg = resolve_config(cfg, len(cohort.labelled))
    plan = plan_benchmark(cfg, cohort)
    jobs = worker_count(cfg, devices)  # single-threaded workers: one per core (or GPU)
    timings = {"loading": time.perf_counter() - t0}
    if dry_run:  # every check of a run, nothing written
        with cluster:
            prepare_output(cfg, cohort, plan, write=False)
            return work_plan(
                cfg, cohort, plan, Path(cfg.out), jobs, ResultStore(cfg.out), given, devices
            )
    with output_lock(cfg.out), cluster:
        out = prepare_output(cfg, cohort, plan).absolute()  # as workers elsewhere must see it
        for sub in Layout.SUBDIRS:
            (out / sub).mkdir(exist_ok=True)
        store = ResultStore(out)
        work = work_plan(cfg, cohort, plan, out, jobs, store, given, devices)
        artefacts = _train_and_evaluate(
            cfg, cohort, plan, out, jobs, store, given, work, progress, devices
        )
        timings.update(artefacts["timings"])
        summary = summarize_stage(cfg, cohort, plan, store, out, given)
        explained = None
        if cfg.attributions:
            explained = attribution_stage(cfg, cohort, plan, summary, artefacts, out, jobs)
            timings["attributions"] = explained.seconds
        timings["total"] = time.perf_counter() - t0
        estimate = work.record(timings, store.tuning())
        manifest = write_manifest(
            cfg, cohort, plan, out, timings, jobs, explained, given, estimate=estimate
        )
    return BenchmarkRun(out, store.results(), summary, manifest)


def work_plan(
    cfg: BenchmarkConfig,
    cohort: Cohort,
    plan: Plan,
    out: Path,
    jobs: int,
    store: ResultStore,
    given: list[PretrainedModel] = (),
    devices: list[str] = ("cpu",),
) -> RunPlan:
    """The work still to do (pretrainings not cached in ``out``, cells not in ``store``) and its
    estimate (``estimate.plan_work``); nothing is read but the store and the models' names."""
    from collections import defaultdict

    cells_only = {"features": defaultdict(lambda: defaultdict(str)), "models": {}}
    cells = plan_jobs(cfg, cohort, plan, store, cells_only, devices)
    pending = [
        (s.index, m, p)
        for s in plan.splits
        for m in cfg.methods
        for p in range(cfg.pretrain_seeds)
        if not ModelLayout(Layout(out).model(s.index, m, p)).weights.is_file()
    ]
    return plan_work(cfg, cohort, plan, cells, pending, jobs, given)


def _train_and_evaluate(
    cfg, cohort, plan, out, jobs, store, given, work: RunPlan, progress, devices
):
    """Stages 4-5 under the progress bars, the plan said above them; returns the artefacts
    with the stages' wall seconds."""
    with Progress(progress) as bar:
        bar.note(work.summary_lines())
        n_models = len(plan.splits) * len(cfg.methods) * cfg.pretrain_seeds
        tick = bar(
            "pretraining", n_models, done=work.pretrainings_cached, eta=work.pretraining_eta()
        )
        t0 = time.perf_counter()
        artefacts = pretrain_stage(cfg, cohort, plan, out, jobs, tick, given)
        timings = artefacts["timings"]
        timings["features"] = time.perf_counter() - t0 - timings["pretraining"]
        group_jobs = plan_jobs(cfg, cohort, plan, store, artefacts, devices)
        n_cells = len(plan.splits) * cfg.seeds * len(plan.fractions) * len(plan.approaches)
        done = n_cells - sum(len(j.approaches) for j in group_jobs)
        tick = bar("evaluating", n_cells, done=done, eta=work.evaluation_eta())
        timings["evaluation"] = evaluate_stage(group_jobs, store, jobs, tick)
    return artefacts
