"""The benchmark's options: ``BenchmarkConfig``, checked by the package's one validator
(``exprssl.options``), the presets (the paper's set-up, the bundled demo) and the settings a run
really uses (``resolve_config``: numbers of splits and seeds decided)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..devices import available_accelerators, parse_devices
from ..encoders import default_encoder
from ..errors import ConfigError
from ..io import ORIENTATIONS
from ..methods import available as available_methods
from ..methods import check_method_params
from ..options import OptionValueError, check_instance, option, option_error, options_class
from ..preprocessing import Preprocessor
from ..splits import DEFAULT_SPLITS, MIN_TEST_PER_CLASS, SPLIT_PARTS, default_outer_splits
from ..threads import cpu_count
from .baselines import default_baselines, get_baseline
from .heads import HeadRecipe
from .metrics import METRICS

log = logging.getLogger("exprssl")
PROTOCOLS = ("default", "paper")
POOL_SCALINGS = ("standardize", "quantile", "none")


def unique_entries(name: str, values: list) -> list:
    """A list option without repeats, in the given order: ``--methods scarf,scarf`` would run
    SCARF twice and count it twice in the summary. Says so."""
    out = list(dict.fromkeys(values))
    if len(out) < len(values):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        log.warning("%s: %s given more than once; each runs once", name, ", ".join(repeated))
    return out


def _names(v: Any, name: str = "names") -> list[str]:
    if isinstance(v, str):  # YAML `methods: scarf` or `methods: scarf,vime`
        v = [x.strip() for x in v.split(",") if x.strip()]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise OptionValueError("a list of names")
    return unique_entries(name, list(v))


def _method_names(v: Any) -> list[str]:
    """SSL methods; ``none`` (or an empty list) runs only the given models and baselines."""
    if v == "none" or (isinstance(v, (list, tuple)) and list(v) == ["none"]):
        return []
    return _names(v, "methods")


def _paths(v: Any, name: str = "pretrain_data") -> list[str]:
    if isinstance(v, str):
        return [v]
    return _names(v, name)


def _fractions(v: Any) -> list[float]:
    if isinstance(v, (int, float)) and not isinstance(v, bool):  # YAML `fractions: 0.5`
        v = [v]
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
        raise OptionValueError("a list of label fractions in (0, 1]")
    out = [p for p in v if isinstance(p, bool) or not (isinstance(p, (int, float)) and 0 < p <= 1)]
    if out:
        raise OptionValueError(f"a list of label fractions in (0, 1] ({out[0]} is outside (0, 1])")
    return unique_entries("fractions", [float(p) for p in v])


def _mapping(v: Any) -> dict[str, Any]:
    if not isinstance(v, Mapping):
        raise OptionValueError("a mapping of option: value")
    return dict(v)


def _mapping_of_mappings(v: Any) -> dict[str, dict[str, Any]]:
    """``method_options``: a mapping of method name to its mapping of option: value."""
    if not isinstance(v, Mapping) or not all(isinstance(x, Mapping) for x in v.values()):
        raise OptionValueError("a mapping of method: {option: value}")
    return {str(k): dict(x) for k, x in v.items()}


def _scheduler(v: Any) -> str:
    """An address (``tcp://host:8786``) or a scheduler file's path; reached in ``cluster``."""
    if not isinstance(v, str) or not v.strip() or any(c.isspace() for c in v.strip()):
        raise OptionValueError(
            "a Dask scheduler's address (tcp://host:8786) or its scheduler file (.json)"
        )
    return v.strip()


def _accelerators() -> tuple[str, ...]:
    """Pretraining's accelerator names present here, but TPUs (the cells do not run on one)."""
    return tuple(a for a in available_accelerators() if a != "tpu")


def _accelerator(v: Any) -> str:
    """A case-insensitive name ('GPU')."""
    if not isinstance(v, str):
        raise OptionValueError("a name")
    return v.lower()


def _split(v: Any) -> dict[str, float]:
    if not isinstance(v, Mapping) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values()
    ):
        raise OptionValueError("a mapping of split parts to fractions summing to 1")
    return dict(v)


@options_class("benchmark")
@dataclass
class BenchmarkConfig:
    """Every option of `exprssl benchmark`; a YAML file may set any of them. ``validate()``
    checks them all before anything is loaded or written."""

    data: str = option("", "expression data: a bundled dataset's name or a file")
    label: str = option("", "the obs column (or sample-sheet column) to predict")
    out: str = option("benchmark", "output directory (a rerun resumes it)")
    labels: str | None = option(None, "sample sheet joined on sample id")
    label_id_column: str | None = option(None, "the sample sheet's sample-id column")
    methods: list[str] = option(
        None,
        "SSL methods to pretrain (none: only the given models)",
        factory=available_methods,
        parse=_method_names,
    )
    models: list[str] = option(
        None,
        "pretrained encoders (model directories or hf:// ids) evaluated as approaches",
        factory=list,
        parse=lambda v: _paths(v, "models"),
    )
    min_model_coverage: float = option(
        0.5, "a model is refused below this fraction of its genes found in the cohort", ge=0, le=1
    )
    baselines: list[str] = option(
        None,
        "supervised baselines and controls",
        factory=default_baselines,
        parse=lambda v: _names(v, "baselines"),
    )
    fractions: list[float] | None = option(
        None, "label fractions (null: log-spaced grid from ~1 per class to 100%)", parse=_fractions
    )
    n_fractions: int = option(6, "points of the log-spaced fraction grid", ge=1, le=50)
    splits: int | None = option(
        None, "outer splits (null: 5 below 1,000 labelled profiles, else 1)", ge=1
    )
    seeds: int | None = option(
        None,
        "label subsets (and head initialisations) per split (null: 2, or 3 with one split)",
        ge=1,
    )
    pretrain_seeds: int = option(
        1, "SSL models per method and split; seed s uses model s % pretrain_seeds", ge=1
    )
    group: str | None = option(None, "obs column whose groups never straddle a split")
    pretrain_data: list[str] = option(
        None, "extra tables added to each split's pool", factory=list, parse=_paths
    )
    pool_scaling: str = option(
        "standardize",
        "how each pretraining source and the cohort are put on one scale before pooling (and, "
        "with standardize, the cohort z-scored per split before a given model)",
        choices=POOL_SCALINGS,
    )
    transductive: bool = option(False, "the test profiles (never their labels) join the pools")
    protocol: str = option(
        "default",
        "default (test part held out; every other label used), or paper (0.2's disjoint "
        "pretrain / fine-tune / test parts)",
        choices=PROTOCOLS,
    )
    split: dict[str, float] | None = option(
        None,
        "fractions of the labelled profiles (null: train 0.8 / test 0.2; paper protocol: "
        "pretrain 0.6 / finetune 0.2 / test 0.2)",
        parse=_split,
    )
    split_seed: int = option(0, "seed of the first outer split", ge=0)
    min_class_size: int = option(
        0,
        "smaller classes leave the task, their profiles still pretrain (0: the classes the split "
        "cannot deal into every part, with a warning naming them; 1: keep every class and refuse "
        "a run whose split cannot, 0.3's behaviour)",
        ge=0,
    )
    epochs: int = option(100, "pretraining epochs (at most)", ge=1)
    batch_size: int = option(128, "pretraining batch size", ge=2)
    patience: int = option(10, "pretraining early-stopping patience", ge=0)
    method_options: dict[str, dict[str, Any]] = option(
        None, "per-method options", factory=dict, parse=_mapping_of_mappings
    )
    encoder: dict[str, Any] = option(
        None, "the encoder's architecture (every method's)", factory=default_encoder, parse=_mapping
    )
    preprocessing: dict[str, Any] = option(
        None, "Preprocessor options", factory=dict, parse=_mapping
    )
    finetune: dict[str, Any] = option(
        None,
        "the head-training recipe (HeadRecipe)",
        factory=lambda: asdict(HeadRecipe()),
        parse=_mapping,
    )
    tune: bool = option(True, "inner-CV hyperparameters for every baseline and head")
    main_metric: str = option("balanced_accuracy", "the metric verdicts use", choices=METRICS)
    min_test_per_class: float = option(
        MIN_TEST_PER_CLASS, "below this many test samples per class and split: no claim", ge=0
    )
    attributions: bool = option(
        True,
        "per-class gene attributions of the best SSL approach and best baseline at each "
        "fraction (attributions.csv)",
    )
    bootstrap: int = option(2000, "bootstrap resamples of the intervals", ge=100, le=100_000)
    jobs: int | None = option(
        None, "worker processes (null: one per core, or one per GPU on a GPU)", ge=1
    )
    scheduler: str | None = option(
        None,
        "a Dask scheduler (tcp://host:8786, or its scheduler file .json): pretraining and cells "
        "run on its workers, which must see the output directory (a shared filesystem)",
        parse=_scheduler,
    )
    accelerator: str = option(
        "auto",
        "hardware of the pretraining and of the cells' torch heads and XGBoost: auto, cpu, gpu, "
        "cuda or mps (must be present; the linear models run on the CPU)",
        choices=_accelerators,
        parse=_accelerator,
        note="available on this machine",
    )
    devices: int | str | list[int] = option(
        "auto",
        "the GPUs the cells share, round-robin: 'auto' (all), a count (-1: all) or indices",
        parse=parse_devices,
    )
    orientation: str = option(
        "auto",
        "a csv/tsv/parquet table's orientation (auto: the way round the sample sheet's ids match)",
        choices=ORIENTATIONS,
    )
    layer: str | None = option(
        None, "the AnnData layer holding the cohort's values, e.g. counts (default: X)"
    )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchmarkConfig:
        """A config from a mapping (a YAML file); unknown names are refused, listing the
        accepted ones. Values are checked by ``validate``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"unknown benchmark option(s): {', '.join(unknown)}; "
                f"accepted: {', '.join(sorted(names))}"
            )
        return cls(**d)

    def validate(self) -> None:
        """Every option's type and range, before anything is loaded or written: each field
        by the one validator, then the rules that join several fields or another registry."""
        if not self.data or not self.label:
            raise ConfigError("benchmark needs data and label")
        for name in ("data", "label", "out", "labels", "label_id_column", "group"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise option_error("benchmark", name, "a single name or path", value)
        check_instance(self, "benchmark")
        jobs_limit = max(64, 4 * cpu_count())  # each job is a process
        if self.jobs is not None and self.jobs > jobs_limit:
            raise option_error(
                "benchmark",
                "jobs",
                f"at most {jobs_limit} (4 worker processes per core here)",
                self.jobs,
            )
        same = [p for p in self.pretrain_data if _same_file(p, self.data)]
        if same:
            raise ConfigError(
                f"pretrain_data {same[0]} is the --data file itself: its test profiles would "
                "join every pretraining pool; leave it out (--transductive does that knowingly)"
            )
        if self.seeds is not None and self.pretrain_seeds > self.seeds:
            raise option_error(
                "benchmark",
                "pretrain_seeds",
                f"between 1 and seeds ({self.seeds})",
                self.pretrain_seeds,
            )
        for m in self.methods:
            check_method_params(m, {**self.encoder, **self.method_options.get(m, {})})
        for b in self.baselines:
            get_baseline(b)  # unknown names raise its ConfigError
        unknown = set(self.method_options) - set(available_methods())
        if unknown:
            raise ConfigError(f"method_options for unknown method(s): {', '.join(sorted(unknown))}")
        HeadRecipe.check(self.finetune)
        Preprocessor.from_options(self.preprocessing).check_params()
        parts = SPLIT_PARTS[self.protocol]
        if self.split is not None and set(self.split) != set(parts):
            raise option_error(
                "benchmark",
                "split",
                f"a mapping of {', '.join(parts)} to fractions summing to 1 "
                f"(the {self.protocol} protocol's parts)",
                self.split,
            )


def cell_devices(cfg: BenchmarkConfig) -> list[str]:
    """The torch devices the cells train on (``devices.torch_devices``: ``['cpu']``, or one
    per GPU). Resolved in the parent, once, so every cell of a run gets the same answer."""
    from .. import devices

    return devices.torch_devices(cfg.accelerator, cfg.devices)


def worker_count(cfg: BenchmarkConfig, devices: list[str]) -> int:
    """Worker processes: ``jobs``, else one per core on the CPU and one per GPU on GPUs (a
    worker per core each taking the same GPU would queue on it and hold its memory many times;
    a cell's torch heads are already batched, so one worker fills a GPU)."""
    if cfg.jobs:
        return cfg.jobs
    return cpu_count() if devices == ["cpu"] else len(devices)


def _same_file(a, b) -> bool:
    try:
        return Path(a).exists() and Path(b).exists() and Path(a).samefile(b)
    except OSError:
        return False


def paper_preset(cfg: BenchmarkConfig) -> BenchmarkConfig:
    """0.2's default protocol, as a new config: disjoint parts of the labelled profiles,
    pretrain 0.6 (their labels unused) / finetune 0.2 (the label fractions) / test 0.2, unless
    ``split`` says otherwise: the hidden-labels design of papers on thousands of profiles."""
    return replace(cfg, split=cfg.split or dict(DEFAULT_SPLITS["paper"]))


def demo_config(out: str = "demo_report") -> BenchmarkConfig:
    """The bundled leukemia cohort, molecular subtype (classes with >= 5 patients; the two
    1-patient classes only pretrain): a real task on which PCA + logistic regression is a strong
    baseline. Three outer splits holding out a quarter each (each pretrains its own models, so
    the intervals include pretraining and test-set variance), "100%" = the other ~96 labelled
    profiles, tuned baselines and heads, gene attributions; sized to finish within about three
    minutes on 2 cores."""
    return BenchmarkConfig(
        data="all_leukemia",
        label="mol.biol",
        out=out,
        min_class_size=5,
        splits=3,
        seeds=1,
        n_fractions=4,
        split={"train": 0.75, "test": 0.25},
        epochs=50,
        batch_size=32,
        patience=10,
        preprocessing={"top_k_variance": 2000},
        finetune={"epochs": 30, "lr": 1e-3, "encoder_lr": 1e-4, "batch_size": 32, "patience": 6},
    )


def resolve_config(cfg: BenchmarkConfig, n_labelled: int) -> BenchmarkConfig:
    """The config a run really uses: the protocol's split, the numbers of splits and seeds
    decided. With one split the interval rests on its seeds (label subsets), so it gets three."""
    if cfg.protocol == "paper":
        cfg = paper_preset(cfg)
    elif cfg.split is None:
        cfg = replace(cfg, split=dict(DEFAULT_SPLITS["default"]))
    if cfg.splits is None:
        cfg = replace(cfg, splits=default_outer_splits(n_labelled))
    if cfg.seeds is None:
        cfg = replace(cfg, seeds=max(3 if cfg.splits == 1 else 2, cfg.pretrain_seeds))
    return cfg
