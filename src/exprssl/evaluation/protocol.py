"""The label-efficiency benchmark: does SSL pretraining beat supervised learning on raw genes?

Leakage-safe by construction: one stratified (optionally grouped) split into an unlabeled
pretraining pool, a labelled fine-tuning pool and a fixed test set; preprocessing is fit on the
pretraining pool only; test samples never touch pretraining, fitting or model choice (early
stopping uses a validation part carved out of each labelled subset).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import ConfigError, LabelColumnError, RareClassError
from ..genes import align_genes
from ..io import load_data, require_label
from ..methods import available as available_methods
from ..methods import get_method
from ..preprocessing import Preprocessor
from ..splits import drop_rare_classes, label_fraction_subsets, log_fraction_grid, split_indices
from ..utils import atomic_savez, atomic_write_text
from .baselines import BASELINES, BaselineContext, SklearnAdapter
from .heads import TorchClassifier, linear_probe
from .metrics import METRICS, classification_metrics, curves

log = logging.getLogger("exprssl")
RESULT_COLUMNS = ["method", "kind", "head", "fraction", "n_labelled", "seed", "metric", "value"]
PROTOCOLS = ("default", "paper")


@dataclass
class BenchmarkConfig:
    """Every option of `exprssl benchmark`; a YAML file may set any of them."""

    data: str = ""
    label: str = ""
    out: str = "benchmark"
    labels: str | None = None  # sample sheet joined on sample id
    label_id_column: str | None = None
    methods: list[str] = field(default_factory=lambda: ["scarf", "byol", "vime", "barlow", "mae"])
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    fractions: list[float] | None = None  # None: log-spaced grid from ~1 per class to 100%
    n_fractions: int = 6
    seeds: int = 3
    pretrain_seeds: int = 1  # SSL models per method; seed s uses model s % pretrain_seeds, so with
    # pretrain_seeds == seeds the CIs include pretraining variance too (at that many times the cost)
    group: str | None = None
    pretrain_data: str | None = None
    protocol: str = "default"
    split: dict[str, float] = field(default_factory=lambda: {"pretrain": 0.6, "finetune": 0.2, "test": 0.2})
    split_seed: int = 0
    min_class_size: int = 0  # drop classes with fewer samples (noted in the report)
    epochs: int = 100
    batch_size: int = 128
    patience: int = 10
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=lambda: {"hidden_dims": [256, 256, 256, 256], "dropout": 0.2})
    preprocessing: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=lambda: {"epochs": 100, "lr": 1e-3, "encoder_lr": 1e-4,
                                                              "batch_size": 32, "patience": 10})
    main_metric: str = "balanced_accuracy"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchmarkConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown benchmark option(s): {', '.join(unknown)}; accepted: {', '.join(sorted(names))}")
        return cls(**d)

    def validate(self) -> None:
        if not self.data or not self.label:
            raise ConfigError("benchmark needs data and label")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol '{self.protocol}'; available: {', '.join(PROTOCOLS)}")
        for m in self.methods:
            get_method(m)
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ConfigError(f"unknown baseline '{bad[0]}'; available: {', '.join(BASELINES)}")
        if self.fractions is not None:
            out = [p for p in self.fractions if not (isinstance(p, (int, float)) and 0 < p <= 1)]
            if out:
                raise ConfigError(f"label fraction {out[0]} is outside (0, 1]")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")
        if not 1 <= self.pretrain_seeds <= self.seeds:
            raise ConfigError(f"pretrain_seeds must be between 1 and seeds ({self.seeds}), got {self.pretrain_seeds}")
        if self.main_metric not in METRICS:
            raise ConfigError(f"main_metric must be one of {', '.join(METRICS)}")
        unknown = set(self.method_options) - set(available_methods())
        if unknown:
            raise ConfigError(f"method_options for unknown method(s): {', '.join(sorted(unknown))}")


def demo_config(out: str = "demo_report") -> BenchmarkConfig:
    """The bundled leukemia cohort, molecular subtype (classes with >= 5 patients): a real task on
    which PCA + logistic regression is a strong baseline. Sized to finish in minutes on 2 cores;
    one pretraining per seed, so the CIs include pretraining variance."""
    return BenchmarkConfig(
        data="all_leukemia", label="mol.biol", out=out, min_class_size=5, seeds=5, pretrain_seeds=5, n_fractions=5,
        split={"pretrain": 0.5, "finetune": 0.25, "test": 0.25}, epochs=100, batch_size=32, patience=15,
        preprocessing={"top_k_variance": 5000},
        finetune={"epochs": 60, "lr": 1e-3, "encoder_lr": 1e-4, "batch_size": 16, "patience": 10},
    )


def paper_overrides(cfg: BenchmarkConfig) -> BenchmarkConfig:
    """Dradjat et al.'s set-up: SSL pretrained on the training samples (labels unused), fractions
    of the same samples labelled, a linear softmax head trained frozen and unfrozen, accuracy.
    Here: 80/20 train/test, the train part serving as both pools."""
    cfg.split = {"train": 0.8, "test": 0.2}
    cfg.main_metric = "accuracy"
    return cfg


# ----------------------------------------------------------------------------- helpers
def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# options that may change between a run and its resume: they add cells, never alter finished ones
_RESUMABLE = {"out", "methods", "baselines", "fractions", "n_fractions", "seeds"}


def _check_resume(out: Path, cfg: BenchmarkConfig, split_hash: str) -> None:
    """Refuse to resume into a directory whose finished cells used other settings: reusing its
    models and scores would silently mix two experiments in one report."""
    split_file, settings_file = out / "splits.json", out / "settings.json"
    if split_file.exists() and json.loads(split_file.read_text()).get("hash") != split_hash:
        raise ConfigError(f"{out}: holds results of a different split (data, label or split options changed); "
                          "use a new --out directory")
    settings = json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k not in _RESUMABLE}, default=str))
    settings["exprssl_version"] = __version__  # another release may score differently
    if settings_file.exists():
        before = json.loads(settings_file.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            diffs = "; ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise ConfigError(f"{out}: holds results run with other settings ({diffs}); rerun with the same "
                              "settings to resume, or use a new --out directory")
    elif (out / "results.csv").exists():
        raise ConfigError(f"{out}: holds results without recorded settings (an older exprssl); "
                          "use a new --out directory")
    atomic_write_text(settings_file, json.dumps(settings, indent=2))


def _git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"exprssl": __version__, "python": platform.python_version()}
    for pkg in ("torch", "lightning", "anndata", "numpy", "scikit-learn", "xgboost"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


class ResultStore:
    """results.csv, rewritten atomically after every cell so a killed run resumes where it stopped."""

    def __init__(self, path: Path):
        self.path = path
        self.df = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=RESULT_COLUMNS)
        self.done = {self._key(r.method, r.head, r.fraction, r.seed) for r in self.df.itertuples()}

    @staticmethod
    def _key(method, head, fraction, seed) -> tuple:
        return (str(method), str(head), round(float(fraction), 6), int(seed))

    def has(self, method, head, fraction, seed) -> bool:
        return self._key(method, head, fraction, seed) in self.done

    def add(self, rows: list[dict]) -> None:
        if not rows:
            return
        new = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        self.df = new if self.df.empty else pd.concat([self.df, new], ignore_index=True)
        for r in rows:
            self.done.add(self._key(r["method"], r["head"], r["fraction"], r["seed"]))
        atomic_write_text(self.path, self.df.to_csv(index=False))


def _carve_validation(y: np.ndarray, seed: int, frac: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ~20% per class for early stopping when every class has >= 2 labelled samples."""
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        return np.arange(len(y)), np.array([], dtype=int)
    rng = np.random.default_rng(seed + 7919)
    val = []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        val.extend(idx[: max(1, int(round(frac * len(idx))))])
    val = np.sort(np.array(val))
    return np.setdiff1d(np.arange(len(y)), val), val


# ----------------------------------------------------------------------------- the run
def prepare(cfg: BenchmarkConfig):
    """Load, validate and split: everything that can fail on bad input, before any training."""
    cfg.validate()
    adata = load_data(cfg.data, labels=cfg.labels, label_id_column=cfg.label_id_column)
    require_label(adata, cfg.label)
    y_all = adata.obs[cfg.label]
    keep = y_all.notna().to_numpy() & (y_all.astype(str) != "nan").to_numpy()
    if cfg.group is not None and cfg.group not in adata.obs.columns:
        raise LabelColumnError(f"group column '{cfg.group}' not found; available: {', '.join(adata.obs.columns)}")
    dropped: dict[str, int] = {}
    if cfg.min_class_size:
        mask, dropped = drop_rare_classes(y_all.astype(str).where(keep), cfg.min_class_size)
        keep &= mask
    adata = adata[keep].copy()
    require_label(adata, cfg.label)
    y = adata.obs[cfg.label].astype(str).to_numpy()
    groups = adata.obs[cfg.group].astype(str).to_numpy() if cfg.group else None
    try:
        parts = split_indices(y, cfg.split, groups=groups, seed=cfg.split_seed)
    except RareClassError as e:
        raise ConfigError(f"{e}: --min-class-size N (min_class_size in a config) drops classes smaller "
                          "than N and lists them in the report") from None
    if cfg.protocol == "paper":
        parts = {"pretrain": parts["train"], "finetune": parts["train"], "test": parts["test"]}
    ft_y = y[parts["finetune"]]
    fractions = cfg.fractions or log_fraction_grid(len(ft_y), len(np.unique(ft_y)), cfg.n_fractions)
    label_fraction_subsets(ft_y, fractions, seed=0)  # validates the fractions
    return adata, y, parts, sorted(fractions), dropped


def run_benchmark(cfg: BenchmarkConfig, *, progress: bool = True) -> pd.DataFrame:
    """Run (or resume) the benchmark into ``cfg.out``; returns the results table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..model import SSLModel

    if cfg.protocol == "paper":
        cfg = paper_overrides(cfg)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    adata, y, parts, fractions, dropped = prepare(cfg)
    pre_adata = adata[parts["pretrain"]]
    if cfg.pretrain_data:
        pre_adata = _transfer_pool(load_data(cfg.pretrain_data), adata, cfg.pretrain_data)
    out = Path(cfg.out)
    for sub in ("models", "histories", "embeddings", "predictions"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    split_hash = _sha({k: v.tolist() for k, v in parts.items()})
    _check_resume(out, cfg, split_hash)
    atomic_write_text(out / "splits.json", json.dumps({"hash": split_hash, **{k: v.tolist() for k, v in parts.items()}}))

    t = time.perf_counter()
    prep = Preprocessor(**cfg.preprocessing).fit(pre_adata)
    X = prep.transform(adata)
    X_pool = prep.transform(pre_adata)
    timings["preprocessing"] = time.perf_counter() - t
    test, ft = parts["test"], parts["finetune"]
    classes = np.unique(y)

    store = ResultStore(out / "results.csv")
    progress_bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), disable=not progress, transient=False)
    models: dict[tuple[str, int], SSLModel] = {}
    best_file = out / "predictions" / "best.npz"
    best = {"score": float(np.load(best_file)["score"]) if best_file.exists() else -1.0}
    with progress_bar:
        task = progress_bar.add_task("pretraining", total=len(cfg.methods) * cfg.pretrain_seeds)
        for name in cfg.methods:
            t = time.perf_counter()
            for k in range(cfg.pretrain_seeds):
                mdir = out / "models" / (name if k == 0 else f"{name}-seed{k}")
                if (mdir / "weights.pt").exists():
                    models[name, k] = SSLModel.load(mdir)
                else:
                    progress_bar.update(task, description=f"pretraining {name}")
                    opts = {**cfg.encoder, **cfg.method_options.get(name, {})}
                    m = SSLModel(name, preprocessor=Preprocessor.from_dict(prep.to_dict()), epochs=cfg.epochs,
                                 batch_size=cfg.batch_size, patience=cfg.patience, seed=cfg.split_seed + k,
                                 progress=False, **opts)
                    m.fit(pre_adata)
                    m.save(mdir)
                    models[name, k] = m
                progress_bar.advance(task)
            atomic_write_text(out / "histories" / f"{name}.csv", models[name, 0].history.to_csv(index=False))
            timings[f"pretrain_{name}"] = time.perf_counter() - t

        Z = {key: m.embed_preprocessed(X) for key, m in models.items()}
        for name in cfg.methods:
            atomic_savez(out / "embeddings" / f"{name}.npz", Z=Z[name, 0][test], labels=y[test].astype(str))
        atomic_savez(out / "embeddings" / "raw.npz", Z=X[test], labels=y[test].astype(str))

        heads = ["linear_probe", "finetune"]
        n_cells = len(fractions) * cfg.seeds * (len(cfg.methods) * len(heads) + len(cfg.baselines))
        task = progress_bar.add_task("evaluating", total=n_cells)
        t = time.perf_counter()
        for seed in range(cfg.seeds):
            subsets = label_fraction_subsets(y[ft], fractions, seed=seed)
            ctx = BaselineContext(n_features=X.shape[1], X_pool=X_pool, seed=seed, encoder_config=cfg.encoder,
                                  finetune=cfg.finetune)
            for frac in fractions:
                lab = ft[subsets[frac]]
                fit_i, val_i = _carve_validation(y[lab], seed)
                tr, va = lab[fit_i], lab[val_i]

                cell = {"fraction": frac, "n_labelled": len(lab), "seed": seed}

                def record(method, kind, head, clf, inputs, cell=cell):
                    proba = clf.predict_proba(inputs[test])
                    scores = classification_metrics(y[test], proba, clf.classes_)
                    store.add([{"method": method, "kind": kind, "head": head, **cell, "metric": k, "value": v}
                               for k, v in scores.items()])
                    if cell["fraction"] == fractions[-1] and scores[cfg.main_metric] > best["score"]:
                        best.update(score=scores[cfg.main_metric], title=f"{method} {head}",
                                    y_pred=np.asarray(clf.classes_)[proba.argmax(1)])

                for name in cfg.methods:
                    model, z = models[name, seed % cfg.pretrain_seeds], Z[name, seed % cfg.pretrain_seeds]
                    for head in heads:
                        if store.has(name, head, frac, seed):
                            progress_bar.advance(task)
                            continue
                        progress_bar.update(task, description=f"{name} {head} p={frac:g} seed={seed}")
                        if head == "linear_probe":
                            if cfg.protocol == "paper":
                                clf = TorchClassifier(model.method.encoder, freeze=True, seed=seed,
                                                      **cfg.finetune).fit(X[tr], y[tr], X[va], y[va])
                                record(name, "ssl", head, clf, X)
                            else:
                                clf = SklearnAdapter(linear_probe(seed)).fit(z[lab], y[lab])
                                record(name, "ssl", head, clf, z)
                        else:
                            clf = TorchClassifier(model.method.encoder, seed=seed,
                                                  **cfg.finetune).fit(X[tr], y[tr], X[va], y[va])
                            record(name, "ssl", head, clf, X)
                        progress_bar.advance(task)
                for b in cfg.baselines:
                    if store.has(b, b, frac, seed):
                        progress_bar.advance(task)
                        continue
                    progress_bar.update(task, description=f"{b} p={frac:g} seed={seed}")
                    clf = BASELINES[b](ctx).fit(X[tr], y[tr], X[va], y[va])
                    record(b, "baseline", b, clf, X)
                    progress_bar.advance(task)
        timings["evaluation"] = time.perf_counter() - t

    if "y_pred" in best:  # a resumed run only replaces the best model's predictions with a better one
        atomic_savez(best_file, y_true=y[test].astype(str), y_pred=best["y_pred"].astype(str),
                     classes=classes.astype(str), score=np.array(best["score"]),
                     title=np.array(f"{best['title']}, {len(ft)} labelled (100%)"))
    timings["total"] = time.perf_counter() - t0
    manifest = {
        "config": asdict(cfg), "versions": _versions(), "git_revision": _git_revision(),
        "dataset": {"source": cfg.data, "n_samples": int(adata.n_obs), "n_genes": int(adata.n_vars),
                    "label": cfg.label, "classes": {str(c): int((y == c).sum()) for c in classes},
                    "dropped_classes": dropped,
                    "description": adata.uns.get("dataset", {}).get("description", "")},
        "split_sizes": {k: len(v) for k, v in parts.items()}, "split_hash": split_hash,
        "gene_list_hash": _sha(prep.genes_), "n_features": len(prep.genes_),
        "preprocessing": prep.describe(), "fractions": fractions, "seeds": list(range(cfg.seeds)),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str))
    from ..report import write_report

    write_report(out, main_metric=cfg.main_metric)
    return store.df


def _transfer_pool(pretrain, target, source: str):
    """Pretraining data restricted to the target's genes it has, aligned by name (>= 50% required)."""
    aligned, report = align_genes(pretrain, list(target.var_names), min_coverage=0.5, source=source)
    shared = np.asarray(target.var_names)[~np.isin(np.asarray(target.var_names), report.missing)]
    log.info("transfer: %s", report)
    return aligned[:, shared].copy()


def summary_table(results: pd.DataFrame, metric: str = "balanced_accuracy", ci: bool = False) -> pd.DataFrame:
    """Approaches x label fractions of mean scores ('mean±half-CI' strings with ``ci``), SSL first."""
    c = curves(results, metric)
    if c.empty:
        return pd.DataFrame()
    if ci:
        c["cell"] = [f"{m:.2f}" if math.isnan(hi) or hi == m else f"{m:.2f}±{hi - m:.2f}"
                     for m, hi in zip(c["mean"], c["hi"], strict=True)]
    else:
        c["cell"] = [f"{m:.3f}" for m in c["mean"]]
    n = c.groupby("fraction")["n_labelled"].mean().round().astype(int)
    table = c.pivot(index="approach", columns="fraction", values="cell")
    table.columns = [f"{f:.0%} (n={n[f]})" for f in table.columns]
    order = c.groupby("approach")["kind"].first().sort_values(ascending=False).index
    return table.loc[order].reset_index()
