"""The label-efficiency benchmark: does SSL pretraining beat supervised learning on the raw genes,
and at how many labels? Run as named stages with plain inputs and outputs:

1. ``load_cohort``: the profiles, the label, and every profile without it (they only pretrain).
2. ``plan_benchmark``: K outer stratified (optionally grouped) splits, each split's pretraining
   pool, the label fractions (merged where they give the same subsets) and the approaches.
3. ``prepare_output``: the output directory is checked and a resumed run's settings compared
   before anything is written.
4. ``pretrain_stage``: per split, preprocessing fit on the pool, every SSL model pretrained once
   (cached and resumable), features and embeddings written once for the evaluation workers.
5. ``evaluate_stage``: every missing cell (split x seed x fraction x approach), in worker
   processes; the parent alone writes results.
6. ``summarize_stage``: means with two-stage bootstrap intervals, paired differences and
   verdicts (summary.csv), and the manifest. The report is written by the caller.

Leakage-safe by construction: test samples never enter a pretraining pool (unless
``transductive``), preprocessing and PCA are fit on the pool, tuning and early stopping use the
labelled subset only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..encoders import default_encoder
from ..errors import ConfigError, LabelColumnError, RareClassError, SingleClassError
from ..io import ORIENTATIONS, load_data, require_label
from ..methods import available as available_methods
from ..methods import check_method_params
from ..outputs import check_output, output_lock
from ..preprocessing import Preprocessor
from ..splits import (
    check_repeats,
    drop_rare_classes,
    label_fraction_subsets,
    log_fraction_grid,
    split_indices,
)
from ..threads import cpu_count, limit_threads
from ..utils import atomic_savez, atomic_write_text
from ..validation import check_model_memory, check_top_genes
from .baselines import BASELINES
from .cells import SSL_HEADS, Approach, GroupJob, evaluate_group
from .heads import HeadRecipe
from .metrics import METRICS
from .results import ResultStore
from .stats import summarize

log = logging.getLogger("exprssl")
PROTOCOLS = ("default", "paper")
# options a rerun may change: they add cells or only change how results are summarised
_RESUMABLE = {"out", "methods", "baselines", "fractions", "n_fractions", "seeds", "splits", "jobs", "bootstrap",
              "min_test_per_class"}


@dataclass
class BenchmarkConfig:
    """Every option of `exprssl benchmark`; a YAML file may set any of them."""

    data: str = ""
    label: str = ""
    out: str = "benchmark"
    labels: str | None = None  # sample sheet joined on sample id
    label_id_column: str | None = None
    methods: list[str] = field(default_factory=available_methods)
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    fractions: list[float] | None = None  # None: log-spaced grid from ~1 per class to 100%
    n_fractions: int = 6
    splits: int | None = None  # outer splits; None: 5 below 1,000 labelled profiles, else 1
    seeds: int | None = None  # label subsets (and head initialisations) per split; None: 2, or 3 with one split
    pretrain_seeds: int = 1  # SSL models per method and split; seed s uses model s % pretrain_seeds
    group: str | None = None
    pretrain_data: list[str] = field(default_factory=list)  # added to each split's pool
    transductive: bool = False  # the test profiles (never their labels) join the pools too
    protocol: str = "default"
    split: dict[str, float] = field(default_factory=lambda: {"pretrain": 0.6, "finetune": 0.2, "test": 0.2})
    split_seed: int = 0
    min_class_size: int = 0  # smaller classes leave the task; their profiles still pretrain
    epochs: int = 100
    batch_size: int = 128
    patience: int = 10
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=default_encoder)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=lambda: asdict(HeadRecipe()))
    tune: bool = True  # inner-CV hyperparameters for every baseline and head
    main_metric: str = "balanced_accuracy"
    min_test_per_class: float = 3.0  # below this many test samples per class and split: no claim
    bootstrap: int = 2000
    jobs: int | None = None  # worker processes; None: one per core
    orientation: str = "auto"  # of a csv/tsv/parquet table; auto: the way round the sample sheet names

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchmarkConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown benchmark option(s): {', '.join(unknown)}; accepted: {', '.join(sorted(names))}")
        d = dict(d)
        if isinstance(d.get("pretrain_data"), str):
            d["pretrain_data"] = [d["pretrain_data"]]
        for key in ("methods", "baselines", "fractions", "pretrain_data"):
            if isinstance(d.get(key), (str, int, float)) and not isinstance(d.get(key), bool):
                # YAML `methods: scarf` or `fractions: 0.5`: one value (or a comma-separated string)
                d[key] = [v.strip() for v in d[key].split(",")] if isinstance(d[key], str) else [d[key]]
            d[key] = unique_entries(key, d[key]) if isinstance(d.get(key), list) else d.get(key, MISSING)
        return cls(**{k: v for k, v in d.items() if v is not MISSING})

    def validate(self) -> None:
        """Every option's type and range, before anything is loaded or written."""
        if not self.data or not self.label:
            raise ConfigError("benchmark needs data and label")
        for name in ("data", "label", "out", "labels", "label_id_column", "group"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be a single name or path, got {value!r}")
        jobs_limit = max(64, 4 * cpu_count())  # each job is a process
        if isinstance(self.jobs, int) and self.jobs > jobs_limit:
            raise ConfigError(f"jobs must be at most {jobs_limit} (4 worker processes per core here), "
                              f"got {self.jobs}")
        _check_choice("protocol", self.protocol, PROTOCOLS)
        _check_choice("main_metric", self.main_metric, METRICS)
        _check_choice("orientation", self.orientation, ORIENTATIONS)
        for name, low in (("n_fractions", 1), ("pretrain_seeds", 1), ("epochs", 1), ("batch_size", 2),
                          ("patience", 0), ("min_class_size", 0), ("split_seed", 0), ("bootstrap", 100)):
            _check_int(name, getattr(self, name), low)
        for name, high in (("bootstrap", 100_000), ("n_fractions", 50)):  # beyond: hours, nothing gained
            if getattr(self, name) > high:
                raise ConfigError(f"{name} must be at most {high:,}, got {getattr(self, name)!r}")
        for name in ("splits", "seeds", "jobs"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if self.seeds is not None and self.pretrain_seeds > self.seeds:
            raise ConfigError(f"pretrain_seeds must be between 1 and seeds ({self.seeds}), got {self.pretrain_seeds}")
        for m in self.methods:
            check_method_params(m, {**self.encoder, **self.method_options.get(m, {})})
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ConfigError(f"unknown baseline '{bad[0]}'; available: {', '.join(BASELINES)}")
        if self.fractions is not None:
            out = [p for p in self.fractions if not (isinstance(p, (int, float)) and 0 < p <= 1)]
            if out:
                raise ConfigError(f"label fraction {out[0]} is outside (0, 1]")
        same = [p for p in self.pretrain_data if _same_file(p, self.data)]
        if same:
            raise ConfigError(f"pretrain_data {same[0]} is the --data file itself: its test profiles would join every "
                              "pretraining pool; leave it out (--transductive does that knowingly)")
        unknown = set(self.method_options) - set(available_methods())
        if unknown:
            raise ConfigError(f"method_options for unknown method(s): {', '.join(sorted(unknown))}")
        HeadRecipe.check(self.finetune)
        Preprocessor.from_options(self.preprocessing).check_params()
        parts = ("pretrain", "finetune", "test")  # the paper preset brings its own train/test split
        if not isinstance(self.split, dict) or not all(isinstance(v, (int, float)) for v in self.split.values()) \
                or (self.protocol == "default" and set(self.split) != set(parts)):
            raise ConfigError(f"split must map {', '.join(parts)} to fractions summing to 1, got {self.split!r}")
        m = self.min_test_per_class
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < float("inf"):
            raise ConfigError(f"min_test_per_class must be a finite number >= 0, got {m!r}")


MISSING = object()


def unique_entries(name: str, values: list) -> list:
    """A list option without repeats, in the given order: ``--methods scarf,scarf`` would run
    SCARF twice and count it twice in the summary. Says so."""
    try:
        out = list(dict.fromkeys(values))
    except TypeError:  # unhashable entries: validate() names the bad value
        return values
    if len(out) < len(values):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        log.warning("%s: %s given more than once; each runs once", name, ", ".join(repeated))
    return out


def _same_file(a, b) -> bool:
    try:
        return Path(a).exists() and Path(b).exists() and Path(a).samefile(b)
    except OSError:
        return False


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def paper_preset(cfg: BenchmarkConfig) -> BenchmarkConfig:
    """Dradjat et al.'s set-up, as a new config: SSL pretrained on the training samples (labels
    unused), fractions of the same samples labelled, a linear softmax head trained frozen and
    unfrozen, accuracy; one 80/20 split unless ``splits`` says otherwise."""
    return replace(cfg, split={"train": 0.8, "test": 0.2}, main_metric="accuracy", splits=cfg.splits or 1)


def demo_config(out: str = "demo_report") -> BenchmarkConfig:
    """The bundled leukemia cohort, molecular subtype (classes with >= 5 patients; the two
    1-patient classes only pretrain): a real task on which PCA + logistic regression is a strong
    baseline. Four outer splits (each pretrains its own models, so the intervals include
    pretraining and test-set variance), tuned baselines and heads; sized to finish within about
    three minutes on 2 cores."""
    return BenchmarkConfig(
        data="all_leukemia", label="mol.biol", out=out, min_class_size=5, splits=4, seeds=1, n_fractions=4,
        split={"pretrain": 0.5, "finetune": 0.25, "test": 0.25}, epochs=60, batch_size=32, patience=10,
        preprocessing={"top_k_variance": 2000},
        finetune={"epochs": 40, "lr": 1e-3, "encoder_lr": 1e-4, "batch_size": 32, "patience": 6},
    )


# ----------------------------------------------------------------------------- stage 1: the cohort
@dataclass
class Cohort:
    adata: Any  # every profile (AnnData), restricted to the genes shared with any extra pool data
    y: np.ndarray  # class code per profile; -1: no label for this task (it only pretrains)
    classes: np.ndarray
    groups: np.ndarray | None
    dropped: dict[str, int]  # classes below min_class_size (their profiles only pretrain)
    n_missing: int  # profiles without the label
    sources: list[tuple[str, Any, float]]  # extra pretraining data: name, AnnData on the shared genes, coverage
    fingerprint: dict[str, str]  # content hashes: a resumed run must see the same data

    @property
    def labelled(self) -> np.ndarray:
        return np.flatnonzero(self.y >= 0)


def _digest(*parts) -> str:
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        if isinstance(p, np.ndarray) and p.dtype.kind in "biuf":
            h.update(np.ascontiguousarray(p).view(np.uint8).reshape(-1))
        else:
            h.update(json.dumps(p, default=str).encode())
    return h.hexdigest()


def load_cohort(cfg: BenchmarkConfig) -> Cohort:
    """Load and validate everything that can fail on bad input, before any training."""
    adata = load_data(cfg.data, labels=cfg.labels, label_id_column=cfg.label_id_column,
                      orientation=cfg.orientation)
    labels = require_label(adata, cfg.label)  # class names as `exprssl info` shows them
    if cfg.group is not None and cfg.group not in adata.obs.columns:
        raise LabelColumnError(f"group column '{cfg.group}' not found; available: {', '.join(map(str, adata.obs.columns))}")
    missing = labels.isna().to_numpy()
    text = labels.fillna("")
    dropped: dict[str, int] = {}
    in_task = ~missing
    if cfg.min_class_size:
        keep, dropped = drop_rare_classes(text[in_task], cfg.min_class_size)
        in_task[np.flatnonzero(in_task)[~keep]] = False
    classes = np.unique(text[in_task])
    if len(classes) < 2:
        raise SingleClassError(f"label column '{cfg.label}' has {len(classes)} class(es) left for the task; need at least 2")
    y = np.full(adata.n_obs, -1, dtype=np.int64)
    y[in_task] = np.searchsorted(classes, text[in_task])
    groups = None
    if cfg.group:
        groups = adata.obs[cfg.group].astype(str).to_numpy()
        if adata.obs[cfg.group][in_task].isna().any():
            raise LabelColumnError(f"group column '{cfg.group}' is empty for some labelled samples")
    adata, sources = _pool_sources(adata, cfg.pretrain_data)
    fingerprint = {"data": _digest(np.asarray(adata.X), list(adata.obs_names), list(adata.var_names)),
                   "labels": _digest(list(text[in_task]), list(np.flatnonzero(in_task)),
                                     None if groups is None else list(groups))}
    for name, src, _ in sources:
        fingerprint[f"pretrain_data:{name}"] = _digest(np.asarray(src.X), list(src.obs_names))
    return Cohort(adata, y, classes, groups, dropped, int(missing.sum()), sources, fingerprint)


def _pool_sources(adata, paths: list[str]):
    """Extra pretraining data, genes aligned by name: every table keeps the genes all of them
    share (each source must hold at least half of the cohort's genes)."""
    from ..genes import align_genes

    sources, genes = [], pd.Index(adata.var_names)
    for path in paths:
        src = load_data(path)
        _, report = align_genes(src, list(adata.var_names), min_coverage=0.5, source=str(path))
        log.warning("pretraining data %s: %s", path, report)
        sources.append((str(path), src, report.coverage))
        genes = genes.intersection(pd.Index(src.var_names), sort=False)
    if not sources:
        return adata, []
    genes = [g for g in adata.var_names if g in set(genes)]
    return adata[:, genes].copy(), [(name, src[:, genes].copy(), cov) for name, src, cov in sources]


# ----------------------------------------------------------------------------- stage 2: the plan
@dataclass
class Split:
    index: int
    pretrain: np.ndarray  # cohort positions; the labelled part of the pool
    finetune: np.ndarray
    test: np.ndarray
    pool: np.ndarray  # cohort positions pretraining uses (pretrain part + profiles without the label)


@dataclass
class Plan:
    splits: list[Split]
    fractions: list[float]
    merged: dict[float, list[float]]  # a kept fraction -> the requested ones giving the same subsets
    approaches: list[Approach]


def resolve_config(cfg: BenchmarkConfig, n_labelled: int) -> BenchmarkConfig:
    """The config a run really uses: the paper preset applied, the numbers of splits and seeds
    decided. With one split the interval rests on its seeds (label subsets), so it gets three."""
    if cfg.protocol == "paper":
        cfg = paper_preset(cfg)
    if cfg.splits is None:
        cfg = replace(cfg, splits=5 if n_labelled < 1000 else 1)
    if cfg.seeds is None:
        cfg = replace(cfg, seeds=max(3 if cfg.splits == 1 else 2, cfg.pretrain_seeds))
    return cfg


def plan_benchmark(cfg: BenchmarkConfig, cohort: Cohort) -> Plan:
    lab = cohort.labelled
    unlabeled = np.flatnonzero(cohort.y < 0)
    splits = []
    for k in range(cfg.splits):
        try:
            parts = split_indices(cohort.classes[cohort.y[lab]], cfg.split, seed=cfg.split_seed + k,
                                  groups=None if cohort.groups is None else cohort.groups[lab])
        except RareClassError as e:
            raise ConfigError(f"{e}: --min-class-size N (min_class_size in a config) drops classes smaller "
                              "than N and lists them in the report") from None
        if k == 0:  # the classes can be split: now bound the options by the data, before any work
            check_repeats(cfg.splits, cfg.seeds, cohort.classes[cohort.y[lab]])
            check_top_genes(cfg.preprocessing.get("top_k_variance"), cohort.adata.n_vars, cfg.data)
            n_features = min(cfg.preprocessing.get("top_k_variance") or cohort.adata.n_vars, cohort.adata.n_vars)
            for method in cfg.methods:  # every model fits in memory, before any is built
                check_model_memory(method, n_features, _pretrain_options(cfg, method)["method_params"])
        parts = {name: lab[idx] for name, idx in parts.items()}
        if cfg.protocol == "paper":
            parts = {"pretrain": parts["train"], "finetune": parts["train"], "test": parts["test"]}
        pool = np.union1d(parts["pretrain"], unlabeled)
        if cfg.transductive:
            pool = np.union1d(pool, parts["test"])
        splits.append(Split(k, parts["pretrain"], parts["finetune"], parts["test"], pool))
    fractions, merged = _fraction_grid(cfg, cohort, splits)
    approaches = [Approach(m, "ssl", h) for m in cfg.methods for h in SSL_HEADS]
    approaches += [Approach(b, BASELINES[b][0], b) for b in cfg.baselines]
    return Plan(splits, fractions, merged, approaches)


def _fraction_grid(cfg, cohort, splits) -> tuple[list[float], dict[float, list[float]]]:
    """The label fractions, merged where they label the same number of samples of every class in
    every split (the subsets are then identical: a repeated column says nothing)."""
    y_ft = cohort.y[splits[0].finetune]
    requested = sorted(cfg.fractions or log_fraction_grid(len(y_ft), len(np.unique(y_ft)), cfg.n_fractions))
    label_fraction_subsets(y_ft, requested, seed=0)  # validates the fractions
    counts = [np.bincount(cohort.y[s.finetune], minlength=len(cohort.classes)) for s in splits]
    by_sizes: dict[tuple, list[float]] = {}
    for p in requested:
        sizes = tuple(tuple(np.minimum(c, np.maximum(1, np.ceil(p * c))).astype(int)) for c in counts)
        by_sizes.setdefault(sizes, []).append(float(p))
    merged = {max(group): sorted(group) for group in by_sizes.values()}
    return sorted(merged), {k: v for k, v in merged.items() if len(v) > 1}


def _carve_validation(y: np.ndarray, seed: int, frac: float = 0.2) -> np.ndarray:
    """Positions (into ``y``) of ~20% per class held out for early stopping of the torch heads,
    when every class has >= 2 labelled samples; empty otherwise."""
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        return np.array([], dtype=int)
    rng = np.random.default_rng(seed + 7919)
    val = [rng.permutation(np.flatnonzero(y == c))[: max(1, int(round(frac * n)))] for c, n in zip(classes, counts, strict=True)]
    return np.sort(np.concatenate(val))


# ----------------------------------------------------------------------------- stage 3: the output
def _settings(cfg: BenchmarkConfig, cohort: Cohort) -> dict:
    settings = json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k not in _RESUMABLE}, default=str))
    settings["exprssl_version"] = __version__  # another release may score differently
    settings["fingerprint"] = cohort.fingerprint
    return settings


def prepare_output(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan) -> Path:
    """Refuse an output directory that is not a benchmark (or empty), or whose finished cells used
    other settings or other data; then record settings and splits. Nothing is written before."""
    out = check_output(cfg.out, "benchmark", inputs=[cfg.data, cfg.labels, *cfg.pretrain_data])
    settings = _settings(cfg, cohort)
    settings_file, split_file = out / "settings.json", out / "splits.json"
    if settings_file.exists():
        before = json.loads(settings_file.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise ConfigError(f"{out}: holds results run with other settings ({_describe_changes(before, settings, changed)}); "
                              "rerun with the same settings to resume, or use a new --out directory")
    splits = {str(s.index): {"pretrain": s.pretrain.tolist(), "finetune": s.finetune.tolist(),
                             "test": s.test.tolist(), "pool": s.pool.tolist()} for s in plan.splits}
    if split_file.exists():
        recorded = json.loads(split_file.read_text())
        if any(recorded.get(k, v) != v for k, v in splits.items()):
            raise ConfigError(f"{out}: holds results of different splits; use a new --out directory")
        splits = {**recorded, **splits}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(settings_file, json.dumps(settings, indent=2))
    atomic_write_text(split_file, json.dumps(splits))
    return out


def _describe_changes(before: dict, after: dict, changed: list[str]) -> str:
    parts = []
    for k in changed:
        if k == "fingerprint":
            b, a = before.get(k) or {}, after.get(k) or {}
            what = sorted(x for x in set(a) | set(b) if a.get(x) != b.get(x))
            parts.append("contents changed: " + ", ".join(what))
        else:
            parts.append(f"{k}: {before.get(k)!r} -> {after.get(k)!r}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------- running tasks
def run_tasks(fn: Callable, tasks: list, jobs: int) -> Iterator:
    """``fn`` over ``tasks``, results as they finish: in ``jobs`` single-threaded worker
    processes, or inline on one thread (tiny fits gain nothing from more and suffer on a busy
    machine)."""
    if jobs <= 1 or len(tasks) <= 1:
        with limit_threads(1):
            for t in tasks:
                yield fn(t)
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", inner_max_num_threads=1):
        yield from Parallel(n_jobs=min(jobs, len(tasks)), return_as="generator_unordered")(
            delayed(_single_threaded(fn))(t) for t in tasks)


def _single_threaded(fn):
    def run(task):
        import torch

        torch.set_num_threads(1)
        return fn(task)

    run.__name__ = getattr(fn, "__name__", "task")
    return run


# ----------------------------------------------------------------------------- stage 4: pretraining
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
    model = SSLModel(task.method, method_params=task.options["method_params"],
                     preprocessor=Preprocessor.from_dict(task.preprocessor), seed=task.seed,
                     **task.options["train"])
    model.fit(pool)
    model.save(task.model_dir, overwrite=True)
    return task.model_dir


def pretrain_stage(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan, out: Path, jobs: int,
                   progress: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """Per split: preprocessing fit on the pool; every SSL model pretrained (or loaded from
    ``models/``); features, embeddings, PCA scores and random-encoder features written to
    ``cache/`` for the workers. Returns the feature paths and model directories."""
    from ..preprocessing import Preprocessor

    features: dict[int, dict[str, str]] = {}
    models: dict[tuple[int, str, int], str] = {}
    tasks, timings = [], {}
    genes = list(cohort.adata.var_names)
    for s in plan.splits:
        cache = out / "cache" / f"split{s.index}"
        cache.mkdir(parents=True, exist_ok=True)
        pool = np.concatenate([np.asarray(cohort.adata.X[s.pool], dtype=np.float32),
                               *[np.asarray(src.X, dtype=np.float32) for _, src, _ in cohort.sources]])
        prep = Preprocessor.from_options(cfg.preprocessing).fit(pool, genes=genes)
        np.save(cache / "pool_raw.npy", pool)
        np.save(cache / "pool.npy", prep.transform(pool, genes))
        np.save(cache / "X.npy", prep.transform(np.asarray(cohort.adata.X, dtype=np.float32), genes))
        prep.save(cache / "preprocessor.json")
        features[s.index] = {"X": str(cache / "X.npy"), "pool": str(cache / "pool.npy")}
        for method in cfg.methods:
            for p in range(cfg.pretrain_seeds):
                mdir = out / "models" / f"split{s.index}" / (method if p == 0 else f"{method}-seed{p}")
                models[s.index, method, p] = str(mdir)
                if not (mdir / "weights.pt").exists():
                    tasks.append(PretrainTask(str(mdir), method, str(cache / "pool_raw.npy"), genes, prep.to_dict(),
                                              _pretrain_options(cfg, method), cfg.split_seed + s.index * 1000 + p))
    t0 = time.perf_counter()
    for _ in run_tasks(pretrain_one, tasks, jobs):
        progress(1)
    timings["pretraining"] = time.perf_counter() - t0
    for s in plan.splits:
        _write_features(cfg, cohort, s, features[s.index], models, out)
    return {"features": features, "models": models, "timings": timings, "n_pretrained": len(tasks)}


def _pretrain_options(cfg: BenchmarkConfig, method: str) -> dict:
    return {"method_params": {**cfg.encoder, **cfg.method_options.get(method, {})},
            "train": {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "patience": cfg.patience, "progress": False}}


def _write_features(cfg, cohort: Cohort, s: Split, feats: dict[str, str], models, out: Path) -> None:
    """Embeddings of every profile by each pretrained model, PCA scores and random-encoder
    features: computed once per split, read by every cell."""
    from sklearn.decomposition import PCA

    from ..model import SSLModel
    from .baselines import random_encoder

    cache = Path(feats["X"]).parent
    X = np.load(feats["X"])
    pool_x = np.load(feats["pool"])
    for method in cfg.methods:
        for p in range(cfg.pretrain_seeds):
            path = cache / f"Z_{method}_{p}.npy"
            model = SSLModel.load(models[s.index, method, p])
            np.save(path, model.embed_preprocessed(np.asarray(X)))
            feats[f"Z:{method}:{p}"] = str(path)
            if s.index == 0 and p == 0:
                history = getattr(model, "history_", None)
                history = history if history is not None else model.history
                atomic_write_text(out / "histories" / f"{method}.csv", history.to_csv(index=False))
                atomic_savez(out / "embeddings" / f"{method}.npz", Z=np.load(path)[s.test],
                             labels=cohort.classes[cohort.y[s.test]].astype(str))
    n = int(min(50, pool_x.shape[0] - 1, pool_x.shape[1]))
    np.save(cache / "pca.npy", PCA(n_components=n, random_state=0).fit(pool_x).transform(np.asarray(X)).astype(np.float32))
    feats["pca"] = str(cache / "pca.npy")
    import torch

    for seed in range(cfg.seeds):
        enc = random_encoder(X.shape[1], cfg.encoder, pool_x, seed)
        with torch.no_grad():
            np.save(cache / f"random_{seed}.npy", enc(torch.as_tensor(np.asarray(X))).numpy())
        feats[f"random:{seed}"] = str(cache / f"random_{seed}.npy")
    if s.index == 0:
        atomic_savez(out / "embeddings" / "raw.npz", Z=np.asarray(X[s.test]),
                     labels=cohort.classes[cohort.y[s.test]].astype(str))


# ----------------------------------------------------------------------------- stage 5: evaluation
def plan_jobs(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan, store: ResultStore, artefacts: dict) -> list[GroupJob]:
    """One job per (split, seed, fraction) with the approaches it still lacks."""
    jobs = []
    recipe = HeadRecipe.check(cfg.finetune)
    for s in plan.splits:
        feats = artefacts["features"][s.index]
        for seed in range(cfg.seeds):
            subsets = label_fraction_subsets(cohort.y[s.finetune], plan.fractions, seed=seed)
            p = seed % cfg.pretrain_seeds
            job_feats = {**feats, **{f"Z:{m}": feats[f"Z:{m}:{p}"] for m in cfg.methods}}
            for frac in plan.fractions:
                todo = [a for a in plan.approaches if not store.has(s.index, a, frac, seed)]
                if not todo:
                    continue
                lab = s.finetune[subsets[frac]]
                val = lab[_carve_validation(cohort.y[lab], seed)]
                jobs.append(GroupJob(split=s.index, seed=seed, fraction=frac, lab=lab, val=val, test=s.test,
                                     y=cohort.y, n_classes=len(cohort.classes), approaches=todo, classes=cohort.classes,
                                     features=job_feats,
                                     models={m: artefacts["models"][s.index, m, p] for m in cfg.methods},
                                     encoder=cfg.encoder, recipe=recipe, tune=cfg.tune, metric=cfg.main_metric,
                                     protocol=cfg.protocol))
    return jobs


def evaluate_stage(jobs: list[GroupJob], store: ResultStore, n_jobs: int,
                   progress: Callable[[int], None] = lambda n: None, flush_every: float = 5.0) -> float:
    """Run the jobs in workers; the parent records each outcome and flushes the result files
    every few seconds (a killed run loses at most those cells, recomputed identically on resume)."""
    t0 = last = time.perf_counter()
    for outcomes in run_tasks(evaluate_group, jobs, n_jobs):
        store.add(outcomes)
        progress(len(outcomes))
        if time.perf_counter() - last > flush_every:
            store.flush()
            last = time.perf_counter()
    store.flush()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- stage 6: summary
def summarize_stage(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan, store: ResultStore, out: Path) -> pd.DataFrame:
    n_test = float(np.mean([len(s.test) for s in plan.splits]))
    summary = summarize(store.results(), store.predictions(), metric=cfg.main_metric,
                        n_classes=len(cohort.classes), n_test_per_split=n_test,
                        min_test_per_class=cfg.min_test_per_class, n_boot=cfg.bootstrap)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    _write_best_predictions(store, summary, cohort, out)
    return summary


def _write_best_predictions(store: ResultStore, summary: pd.DataFrame, cohort: Cohort, out: Path) -> None:
    """Predictions of the best approach at the largest fraction, pooled over splits and seeds,
    for the confusion matrix."""
    if summary.empty:
        return
    last = summary[summary["fraction"] == summary["fraction"].max()]
    top = last.loc[last["mean"].idxmax()]
    p = store.predictions()
    p = p[(p["approach"] == top["approach"]) & np.isclose(p["fraction"], top["fraction"])]
    atomic_savez(out / "predictions" / "best.npz", y_true=cohort.classes[p["y_true"].to_numpy()].astype(str),
                 y_pred=cohort.classes[p["y_pred"].to_numpy()].astype(str), classes=cohort.classes.astype(str),
                 score=np.array(top["mean"]),
                 title=np.array(f"{top['approach']}, {int(round(top['n_labelled']))} labelled "
                                f"({top['fraction']:.0%}), all splits x seeds"))


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"exprssl": __version__, "python": platform.python_version()}
    for pkg in ("torch", "lightning", "anndata", "numpy", "scikit-learn", "xgboost"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_manifest(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan, out: Path, timings: dict, jobs: int) -> dict:
    from ..preprocessing import Preprocessor
    from .tuning import describe_grids

    counts = {str(c): int((cohort.y == i).sum()) for i, c in enumerate(cohort.classes)}
    prep = Preprocessor.load(out / "cache" / "split0" / "preprocessor.json")
    manifest = {
        "config": asdict(cfg), "versions": _versions(), "git_revision": _git_revision(),
        "dataset": {"source": cfg.data, "n_samples": int(cohort.adata.n_obs), "n_genes": int(cohort.adata.n_vars),
                    "label": cfg.label, "classes": counts, "dropped_classes": cohort.dropped,
                    "n_without_label": cohort.n_missing,
                    "description": cohort.adata.uns.get("dataset", {}).get("description", "")},
        "pool": _describe_pool(cfg, cohort, plan),
        "test_per_class": {str(c): float(np.mean([(cohort.y[s.test] == i).sum() for s in plan.splits]))
                           for i, c in enumerate(cohort.classes)},
        "splits": len(plan.splits), "split_sizes": {k: int(np.mean([len(getattr(s, k)) for s in plan.splits]))
                                                    for k in ("pretrain", "finetune", "test", "pool")},
        "fractions": plan.fractions, "merged_fractions": {str(k): v for k, v in plan.merged.items()},
        "seeds": list(range(cfg.seeds)), "tuning": {"on": cfg.tune, "grids": describe_grids()},
        "preprocessing": prep.describe(), "n_features": len(prep.genes_),
        "fingerprint": cohort.fingerprint, "jobs": jobs,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str))
    return manifest


def _describe_pool(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan) -> dict:
    s = plan.splits[0]
    parts = {"labelled profiles of the pretraining part": int(len(s.pretrain)) if cfg.protocol != "paper" else 0,
             "profiles without the label": cohort.n_missing,
             "profiles of classes too small for the task": int(sum(cohort.dropped.values()))}
    if cfg.protocol == "paper":
        parts["training profiles (paper protocol)"] = int(len(s.pretrain))
    if cfg.transductive:
        parts["test profiles, without their labels (transductive)"] = int(len(s.test))
    for name, src, cov in cohort.sources:
        parts[f"{name} ({100 * cov:.0f}% of the genes)"] = int(src.n_obs)
    return {"size": int(len(s.pool) + sum(src.n_obs for _, src, _ in cohort.sources)), "parts": parts,
            "n_genes": int(cohort.adata.n_vars)}


# ----------------------------------------------------------------------------- the run
@dataclass
class BenchmarkRun:
    out: Path
    results: pd.DataFrame
    summary: pd.DataFrame
    manifest: dict


def run_benchmark(cfg: BenchmarkConfig, *, progress: bool = True) -> BenchmarkRun:
    """Run (or resume) the benchmark into ``cfg.out``; the report is written by the caller
    (``exprssl.benchmark`` or the CLI)."""
    t0 = time.perf_counter()
    cfg.validate()
    check_output(cfg.out, "benchmark", inputs=[cfg.data, cfg.labels, *cfg.pretrain_data])  # before any work
    cohort = load_cohort(cfg)
    cfg = resolve_config(cfg, len(cohort.labelled))
    plan = plan_benchmark(cfg, cohort)
    # single-threaded worker processes never spin on a busy core: with neighbours each gets its fair
    # share, so every core of ours is used (one worker next to two busy processes made the demo 3x slower)
    jobs = cfg.jobs or cpu_count()
    with output_lock(cfg.out):
        out = prepare_output(cfg, cohort, plan)
        for sub in ("models", "histories", "embeddings", "predictions", "cache"):
            (out / sub).mkdir(exist_ok=True)
        store = ResultStore(out)
        with _progress(progress) as bar:
            n_models = len(plan.splits) * len(cfg.methods) * cfg.pretrain_seeds
            artefacts = pretrain_stage(cfg, cohort, plan, out, jobs, bar("pretraining", n_models))
            group_jobs = plan_jobs(cfg, cohort, plan, store, artefacts)
            n_cells = len(plan.splits) * cfg.seeds * len(plan.fractions) * len(plan.approaches)
            tick = bar("evaluating", n_cells, done=n_cells - sum(len(j.approaches) for j in group_jobs))
            evaluation = evaluate_stage(group_jobs, store, jobs, tick)
        summary = summarize_stage(cfg, cohort, plan, store, out)
        timings = {**artefacts["timings"], "evaluation": evaluation, "total": time.perf_counter() - t0}
        manifest = write_manifest(cfg, cohort, plan, out, timings, jobs)
    return BenchmarkRun(out, store.results(), summary, manifest)


class _progress:
    """Rich progress bars, one per stage (or none)."""

    def __init__(self, enabled: bool):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), disable=not enabled, transient=False)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def __call__(self, description: str, total: int, done: int = 0) -> Callable[[int], None]:
        task = self.bar.add_task(description, total=max(total, 1), completed=done)
        return lambda n: self.bar.advance(task, n)


__all__ = ["BenchmarkConfig", "BenchmarkRun", "Cohort", "Plan", "Split", "demo_config", "load_cohort",
           "paper_preset", "plan_benchmark", "run_benchmark"]
