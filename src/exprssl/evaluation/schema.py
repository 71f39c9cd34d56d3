"""The schema of the files a benchmark writes, in one place: approach names, feature keys,
verdicts, the columns of ``results.csv`` / ``predictions.parquet`` / ``tuning.csv`` /
``summary.csv`` / ``attributions.csv``, the manifest (``Manifest``, a dataclass) and the paths
of the output directory (``Layout``). The runner writes through it; ``results``, ``stats``,
``report``, the CLI and the tests read through it.

- An approach is named ``"<method>+<head>"`` for an SSL method with a head (``scarf+finetune``;
  the heads: ``ssl_heads``) and by its own name for a baseline or control (``logreg``):
  ``approach_name``, read back by ``method_and_head``.
- A feature key names one ``.npy`` of derived features (``FeatureKey``, the key of every
  ``Features`` mapping): ``GENES`` (the preprocessed genes; ``FeatureKey.genes(model)`` a given
  model's own preprocessing of them), ``POOL`` / ``POOL_RAW`` (the split's pretraining pool,
  preprocessed / raw), ``PCA_SCORES``, ``FeatureKey.random(seed)``, ``FeatureKey.embedding(method,
  pretrain_seed)`` (a model's embeddings) or ``FeatureKey.embedding(method)`` (a cell's
  embeddings, whichever pretrain seed it uses). ``str(key)`` reads ``X``, ``random:3``,
  ``Z:scarf:0``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..outputs import ATTRIBUTIONS_HEADER, BENCHMARK_SETTINGS
from .keys import GENES as GENES  # the feature keys are part of the schema: re-exported
from .keys import PCA_SCORES as PCA_SCORES
from .keys import POOL as POOL
from .keys import POOL_RAW as POOL_RAW
from .keys import FeatureKey as FeatureKey
from .keys import Features as Features

APPROACH_SEPARATOR = "+"  # between an SSL method and its head: scarf+finetune


class Verdict:
    """A verdict of an SSL approach against the fraction's best baseline."""

    BETTER = "SSL better"
    WORSE = "SSL worse"
    NO_DIFFERENCE = "no detectable difference"
    TOO_SMALL = "too small for a claim"
    ALL = (BETTER, WORSE, NO_DIFFERENCE, TOO_SMALL)


class TransferVerdict:
    """A verdict of a given (transferred) model's approach against its in-cohort or
    no-pretraining counterpart."""

    BETTER = "transfer better"
    WORSE = "transfer worse"
    NO_DIFFERENCE = Verdict.NO_DIFFERENCE
    TOO_SMALL = Verdict.TOO_SMALL
    ALL = (BETTER, WORSE, NO_DIFFERENCE, TOO_SMALL)


def approach_name(method: str, kind: str, head: str) -> str:
    """The one naming rule: ``method+head`` for SSL, the method's name otherwise."""
    return f"{method}{APPROACH_SEPARATOR}{head}" if kind == "ssl" else method


def approach_names(frame: pd.DataFrame) -> np.ndarray:
    """``approach_name`` of every row of a frame with method, kind and head columns."""
    rows = zip(frame["method"], frame["kind"], frame["head"], strict=True)
    return np.array([approach_name(*row) for row in rows], dtype=object)


def method_and_head(approach: str) -> tuple[str, str]:
    """``approach_name`` read back: (method, head); a baseline's head is its own name."""
    method, _, head = str(approach).partition(APPROACH_SEPARATOR)
    return method, head or method


# ----------------------------------------------------------------------------- result files
RESULT_COLUMNS = [
    "split",
    "method",
    "kind",
    "head",
    "fraction",
    "n_labelled",
    "seed",
    "metric",
    "value",
]
PREDICTION_COLUMNS = ["split", "seed", "fraction", "approach", "test_index", "y_true", "y_pred"]
TUNING_COLUMNS = ["split", "seed", "fraction", "approach", "params", "note", "seconds"]
# gene, class, approach, split, fraction, attribution, rank (outputs recognises a table by it)
ATTRIBUTION_COLUMNS = ATTRIBUTIONS_HEADER.split(",")
CELL_KEY = ["split", "approach", "fraction", "seed"]  # one cell of the benchmark
RESULT_ORDER = ["split", "method", "head", "fraction", "seed"]  # results.csv's row order


def cell_key(split, approach: str, fraction, seed) -> tuple:
    """A cell's identity, comparable across files (fractions rounded to 6 decimals)."""
    return int(split), str(approach), round(float(fraction), 6), int(seed)


@dataclass(frozen=True)
class Layout:
    """Paths of a benchmark's output directory."""

    out: Path

    @property
    def results(self) -> Path:
        return self.out / "results.csv"

    @property
    def predictions(self) -> Path:
        return self.out / "predictions.parquet"

    @property
    def tuning(self) -> Path:
        return self.out / "tuning.csv"

    @property
    def summary(self) -> Path:
        return self.out / "summary.csv"

    @property
    def attributions(self) -> Path:
        return self.out / "attributions.csv"

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.json"

    @property
    def settings(self) -> Path:
        return self.out / BENCHMARK_SETTINGS  # what the output rules recognise a run by

    @property
    def splits(self) -> Path:
        return self.out / "splits.json"

    @property
    def shared_cache(self) -> Path:
        """Features every split shares (a given model's, when the cohort is not re-scaled)."""
        return self.out / "cache"

    def cache(self, split: int) -> Path:
        return self.shared_cache / f"split{split}"

    def preprocessor(self, split: int) -> Path:
        """The preprocessing a split fit on its pool (its genes: ``top_k_variance`` per pool)."""
        return self.cache(split) / "preprocessor.json"

    @property
    def embeddings(self) -> Path:
        return self.out / "embeddings"

    def embedding(self, name: str) -> Path:
        """Split 0's test-set embedding by ``name`` (a method, a given model, or ``raw``)."""
        return self.embeddings / f"{name}.npz"

    @property
    def histories(self) -> Path:
        return self.out / "histories"

    def history(self, name: str) -> Path:
        return self.histories / f"{name}.csv"

    @property
    def best_predictions(self) -> Path:
        """The best approach's predictions at the largest fraction (the confusion matrix)."""
        return self.out / "predictions" / "best.npz"

    def model(self, split: int, method: str, pretrain_seed: int) -> Path:
        name = method if pretrain_seed == 0 else f"{method}-seed{pretrain_seed}"
        return self.out / "models" / f"split{split}" / name

    SUBDIRS = ("models", "histories", "embeddings", "predictions", "cache")


# ----------------------------------------------------------------------------- summary.csv
SUMMARY_COLUMNS = [
    "fraction",
    "approach",
    "method",
    "kind",
    "head",
    "n_labelled",
    "mean",
    "n_splits",
    "n_cells",
    "lo",
    "hi",
    "n_test",
    "best_ssl",
    "best_baseline",
    "degenerate",
    "collapsed",
    "excluded",
    "vs",
    "diff",
    "diff_lo",
    "diff_hi",
    "verdict",
    # a given model's approach against the same method pretrained on the cohort, and against no
    # pretraining (stats.transfer_counterparts); empty on every other row
    *(
        col
        for s in ("_in_cohort", "_no_pretraining")
        for col in (f"vs{s}", f"diff{s}", f"diff{s}_lo", f"diff{s}_hi", f"verdict{s}")
    ),
]


def read_summary(path: str | Path) -> pd.DataFrame:
    """``summary.csv`` with its flags as booleans and text columns as text.

    Parameters
    ----------
    path
        The file (``Layout(out).summary``).

    Returns
    -------
    pandas.DataFrame
        One row per approach and fraction (``SUMMARY_COLUMNS``); empty when there is no file yet.
    """
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    text = ["approach", "degenerate", *(c for c in SUMMARY_COLUMNS if c.startswith("vs"))]
    summary = pd.read_csv(path, dtype=dict.fromkeys(text, str))
    for col in ("best_ssl", "best_baseline", "excluded"):
        if col in summary:
            summary[col] = summary[col].astype(bool)
    if "degenerate" in summary:
        summary["degenerate"] = summary["degenerate"].fillna("")
    return summary


# ----------------------------------------------------------------------------- manifest.json
# Every field has a default: a manifest written by an older release, or a hand-made partial one,
# still reads (the report notes what is missing instead of failing). Unknown keys are ignored.
@dataclass
class DatasetInfo:
    """The cohort as the benchmark read it."""

    source: str | None = None
    n_samples: int | None = None
    n_genes: int | None = None
    label: str | None = None
    classes: dict[str, int] = field(default_factory=dict)  # labelled profiles per class
    dropped_classes: dict[str, int] = field(default_factory=dict)  # too small: only pretrain
    dropped_rule: str = ""  # what too small meant: "fewer than 2 samples: one per part ..."
    n_without_label: int = 0
    description: str = ""


@dataclass
class PoolInfo:
    """One split's pretraining pool: its size, what it is made of, how sources were scaled."""

    scaling: str | None = None  # how other sources were put on the cohort's scale
    size: int | None = None
    parts: dict[str, int] = field(default_factory=dict)
    n_genes: int | None = None


@dataclass
class FullLabels:
    """What "100%" of the labels is: labelled profiles per split (mean) and per class."""

    mean: float | None = None
    per_class: dict[str, float] = field(default_factory=dict)
    of: str = ""


@dataclass
class ModelInfo:
    """A given pretrained encoder, from its model card and its match to the cohort."""

    given: str | None = None  # path or hub id as the user gave it
    directory: str | None = None
    weights_sha256: str | None = None
    gene_coverage: float = 0.0
    input_scaling: str = ""
    alignment: str = ""
    method: str | None = None
    method_options: dict[str, Any] = field(default_factory=dict)
    data_sources: list[dict[str, Any]] = field(default_factory=list)
    genes: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    epochs_trained: int | None = None
    max_epochs: int | None = None
    exprssl_version: str | None = None


@dataclass
class AttributionInfo:
    """What the attribution stage explained: the approaches chosen at each fraction, the largest
    fraction (the report's table) with its linear reference."""

    fractions: list[float] = field(default_factory=list)
    by_fraction: dict[str, list[str]] = field(default_factory=dict)
    fraction: float | None = None
    approaches: list[str] = field(default_factory=list)
    reference: str | None = None  # the linear baseline the others' top genes are compared with
    max_samples_per_split: int | None = None
    computed: int = 0
    seconds: float = 0.0
    # approach -> why it has no gene table (its learner cannot be attributed; the report says so)
    not_attributable: dict[str, str] = field(default_factory=dict)


_PARTS = {
    "dataset": DatasetInfo,
    "pool": PoolInfo,
    "full_labels": FullLabels,
    "attributions": AttributionInfo,
}


@dataclass
class Manifest:
    """``manifest.json``: the provenance of a finished run (config, versions, data, pools,
    splits, grids, preprocessing, fingerprints, timings). ``write_manifest`` builds it; the
    report and the CLI read it with ``Manifest.read``."""

    config: dict[str, Any] = field(default_factory=dict)  # BenchmarkConfig's fields as run
    versions: dict[str, str] = field(default_factory=dict)
    git_revision: str | None = None
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    pool: PoolInfo = field(default_factory=PoolInfo)
    test_per_class: dict[str, float] = field(default_factory=dict)  # mean over splits
    splits: int | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)  # pretrain/finetune/test/pool
    full_labels: FullLabels = field(default_factory=FullLabels)
    fractions: list[float] = field(default_factory=list)
    merged_fractions: dict[str, list[float]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    tuning: dict[str, Any] = field(default_factory=dict)
    preprocessing: list[str] = field(default_factory=list)
    n_features: int | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    models: dict[str, ModelInfo] = field(default_factory=dict)
    attributions: AttributionInfo | None = None  # None: attributions were off
    jobs: int | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    # the plan's estimate (counts, seconds per stage and learner, with a range) beside the
    # actual seconds: how well the cost model predicted this run (``estimate.RunPlan.record``)
    estimate: dict[str, Any] = field(default_factory=dict)

    def setting(self, name: str) -> Any:
        """A benchmark option as the run used it, else ``BenchmarkConfig``'s default."""
        from .config import BenchmarkConfig

        value = self.config.get(name)
        return getattr(BenchmarkConfig(), name) if value is None else value

    @property
    def found(self) -> bool:
        """Whether this came from a run's file (False: no manifest yet, every field empty)."""
        return bool(self.config or self.versions or self.splits is not None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> None:
        from ..utils import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, default=str))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        for key, part in _PARTS.items():
            value = kw.pop(key, None)
            if isinstance(value, dict):
                kw[key] = _part(part, value)  # anything else (absent, null): the default
        kw["models"] = {
            str(k): _part(ModelInfo, v)
            for k, v in (kw.get("models") or {}).items()
            if isinstance(v, dict)
        }
        return cls(**kw)

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        """The manifest of a run.

        Parameters
        ----------
        path
            ``manifest.json``, or a benchmark directory.

        Returns
        -------
        Manifest
            What the file says (fields it lacks take their defaults); an empty manifest
            (``found`` False) when there is none yet.
        """
        path = Path(path)
        if path.is_dir():
            path = Layout(path).manifest
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        return cls.from_dict(data if isinstance(data, dict) else {})


def _part(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})
