"""The plan before the work: how many pretrainings and cells a benchmark will run and about how
long it will take on this machine, said before the first model trains. ``exprssl benchmark
--dry-run`` prints only that; a real run prints it, feeds the progress bars' remaining time with
it and records it beside the actual seconds in ``manifest.json``.

The cost model. A short probe (``probe``: a second or two for a small run, a few seconds at the
paper's size) times, in CPU seconds (the estimate is for idle cores, whatever the load while
probing), each kind of work the run will do, single-threaded as the workers run it, on
seeded random data with the run's classes and gene width (at most ``PROBE_MAX_WIDTH`` features,
at two row counts up to ``PROBE_MAX_ROWS``): a logistic regression fit (lbfgs) per feature width,
an epoch of the elastic net's saga solver, XGBoost's set-up and one boosting round, an epoch of
stacked torch heads, a few pretraining steps of each SSL method at the run's batch size and
width, the preprocessing and a matrix product. Each becomes seconds per unit of work as a line
in the rows, a + b n, scaled linearly in the features (the torch heads: in their multiply-adds)
and in the classes (XGBoost: in its trees per round). How many units a cell runs follows from
its learner's grid, inner folds, rounds and epochs (``CostModel.cell``, written for today's
learners); what early stopping decides (rounds, epochs) is a ``Count`` with a range. Cells are
scheduled on the workers in the runner's order. The range multiplies the counts' ranges by
``EXTRAPOLATION`` (probe noise; growth not exactly linear in n); the progress bar corrects the
expectation with the measured seconds as cells finish (``pool.RemainingTime``).
"""

from __future__ import annotations

import contextlib
import heapq
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..threads import cpu_count, limit_threads
from .baselines import get_baseline
from .boosting import searched_rounds
from .cells import Approach, ssl_learner
from .heads import HeadRecipe, patience_epochs
from .pool import RemainingTime, duration_text
from .schema import cell_key
from .screening import screen_width
from .tuning import GRIDS, MAX_FOLDS, inner_folds

if TYPE_CHECKING:
    from .cells import GroupJob
    from .cohort import Cohort
    from .config import BenchmarkConfig
    from .planning import Plan

PROBE_MAX_WIDTH = 1024  # features a probe fits on; a wider run scales linearly
PROBE_MAX_ROWS = 256
SSL_PROBE_MAX_WIDTH = 4096  # genes a pretraining step is timed on (then scaled by its work)
PROBE_MODELS = 3  # stacked torch models in the probe: two inner folds and the final model
EXTRAPOLATION = (0.6, 1.7)  # probe noise and growth that is not exactly linear in n
PRETRAIN_FIXED_S = 1.5  # per pretraining: Lightning's set-up, the model saved
WORKER_START_S = 5.0  # a worker process importing torch and Lightning (2-core machine, idle)
EPOCH_OVERHEAD_S = 0.05  # per pretraining epoch: the validation loop, the history
IG_ROWS, IG_STEPS = 256, 32  # attributions: test rows explained per split, path points
MODEL_LOAD_S = 1.0  # a pretrained model read back to embed the profiles
WRITE_BYTES_PER_S = 2e8  # the split's matrices written for the workers (np.save)
ATTRIBUTION_TASK_S = 2.0  # per explained (split, fraction): the models loaded, the task sent


@dataclass(frozen=True)
class Count:
    """A number of work units that early stopping decides, so the probe cannot see: expected,
    with a range."""

    expected: float
    low: float
    high: float


XGB_ROUNDS = Count(150, 40, 320)  # an early-stopped fold fit: up to 300 rounds + 20 patience
# optimizer steps a torch head improves for before patience runs out (measured on seeded
# synthetic 19-class cohorts, encoder of 4 x 256, 2,000 genes, pretrained by SCARF: 186, 280
# and ~750 steps at 240, 1,600 and 7,479 labelled profiles; rounded up)
HEAD_STEPS_TO_BEST = 800
XGB_DEFAULT_ROUNDS = 100  # an untuned cell's fit (learners.fit_xgboost's default_rounds)
SAGA_EPOCHS = Count(50, 15, 100)  # the elastic net: tol 1e-2, at most 100 epochs
LBFGS = Count(1, 0.5, 2)  # one fit; its iterations grow with separability, unmeasured at scale

# the learner family of each baseline (one this table does not know is costed as logistic)
FAMILIES = {
    "logreg": "logistic",
    "pca_logreg": "logistic",
    "random_encoder": "logistic",
    "elasticnet": "elasticnet",
    "xgboost": "xgboost",
    "mlp": "torch",
}
SCREENED = ("xgboost", "elasticnet")  # families whose fits read screened genes
FAMILY_NAMES = {
    "logistic": "logistic regression",
    "elasticnet": "elastic net",
    "xgboost": "XGBoost",
    "torch": "torch heads (fine-tuning, MLP)",
}
STAGES = ("pretraining", "features", "evaluation", "attributions")


# --------------------------------------------------------------------------- spans and lines
@dataclass
class Span:
    """Seconds: the expectation and a range."""

    expected: float = 0.0
    low: float = 0.0
    high: float = 0.0

    def __add__(self, other: Span) -> Span:
        return Span(self.expected + other.expected, self.low + other.low, self.high + other.high)

    @classmethod
    def of(cls, seconds: float, count: Count = LBFGS) -> Span:
        """``seconds`` expected, ranged by ``count``'s range and ``EXTRAPOLATION``."""
        lo, hi = EXTRAPOLATION
        rel = seconds / count.expected if count.expected else 0.0
        return cls(seconds, rel * count.low * lo, rel * count.high * hi)

    def text(self) -> str:
        """``about 40 min (20 min-1.3 h)``."""
        return (
            f"about {duration_text(self.expected)} "
            f"({duration_text(self.low)}-{duration_text(self.high)})"
        )

    def to_dict(self) -> dict[str, float]:
        return {
            "estimated_s": round(self.expected, 2),
            "low_s": round(self.low, 2),
            "high_s": round(self.high, 2),
        }


@dataclass(frozen=True)
class Line:
    """Seconds of one unit of work on n rows, a + b n, measured at ``width`` features."""

    a: float
    b: float
    width: int

    def at(self, n: float, scale: float = 1.0) -> float:
        return (self.a + self.b * max(float(n), 0.0)) * scale

    @classmethod
    def through(cls, n1: float, t1: float, n2: float, t2: float, width: int) -> Line:
        """The line through two timings; its slope at least a tenth of the larger one's mean
        seconds per row (timing noise never makes a learner free at scale)."""
        if n2 <= n1:
            return cls(0.0, t2 / max(n2, 1.0), width)
        b = max((t2 - t1) / (n2 - n1), 0.1 * t2 / n2)
        return cls(max(t2 - b * n2, 0.0), b, width)


# --------------------------------------------------------------------------- the probe
@dataclass(frozen=True)
class ProbeSpec:
    """What a run needs timed (hashable: the probe of a shape is cached per process)."""

    classes: int
    rows: int  # labelled rows of the run's largest cell
    widths: tuple[tuple[str, int], ...]  # (learner family, feature width) pairs
    hidden: tuple[int, ...] = (256,)
    dropout: float = 0.0
    head_batch: int = 32
    ssl: tuple[tuple[str, str], ...] = ()  # (method, its options as JSON)
    ssl_width: int = 0
    ssl_batch: int = 128
    ssl_parallel: bool = True  # pretrainings in single-threaded workers (else threads_for)
    preprocessing: str = "{}"  # the Preprocessor's options as JSON
    raw_width: int = 0


@dataclass
class Calibration:
    """Seconds per unit of work on this machine, measured by ``probe``."""

    classes: int
    logistic: dict[int, Line] = field(default_factory=dict)  # per feature width
    saga_epoch: Line | None = None
    xgb_setup: Line | None = None
    xgb_round: Line | None = None  # every tree of one boosting round (while probing: both)
    torch_epoch: Line | None = None  # an epoch of PROBE_MODELS stacked heads
    hidden: tuple[int, ...] = (256,)
    ssl_step: dict[str, float] = field(default_factory=dict)  # per method, at the run's batch
    cell_s: float = 0.0  # a cell's own work besides its fits: folds, scores
    element_s: float = 0.0  # preprocessing, per value
    flops_per_s: float = 1e10  # a matrix product, one thread
    seconds: float = 0.0  # the probe's own wall time


_MEASURED: dict[tuple, Any] = {}  # every timing made in this process, by what it timed


def probe(spec: ProbeSpec) -> Calibration:
    """Time each kind of work ``spec`` names, single-threaded, random-number state untouched.
    Sizes are rounded up to powers of two and each timing is kept for the process: a test suite
    or a notebook times a kind of work once."""
    t0 = time.perf_counter()
    cal = Calibration(spec.classes, hidden=spec.hidden)
    n_hi = int(min(PROBE_MAX_ROWS, _pow2(max(spec.rows, 4 * spec.classes))))
    n_lo = int(max(2 * spec.classes, n_hi // 4))
    with _isolated_rng(), limit_threads(1):
        for family, width in spec.widths:
            w = int(min(PROBE_MAX_WIDTH, _pow2(width)))
            key = (family, w, n_lo, n_hi, spec.classes)
            if family == "torch":
                key += (spec.hidden, spec.dropout, spec.head_batch)
            got = _measure(key, lambda f=family, w=w: _PROBERS[f](w, n_lo, n_hi, spec))
            if family == "logistic":
                cal.logistic[w] = got
            else:
                setattr(cal, _FIELDS[family], got)
        for method, params in spec.ssl:
            key = ("ssl", method, params, spec.ssl_width, spec.ssl_batch, spec.ssl_parallel)
            cal.ssl_step[method] = _measure(key, lambda m=method, p=params: _probe_ssl(m, p, spec))
        cal.cell_s = _measure(("cell", spec.classes, n_hi), lambda: _probe_cell(spec, n_hi))
        key = ("preprocessing", spec.preprocessing, _pow2(spec.raw_width), n_hi)
        cal.element_s = _measure(key, lambda: _probe_preprocessing(spec, n_hi))
        cal.flops_per_s = _measure(("matmul",), _probe_matmul)
    if cal.xgb_round is not None:
        cal.xgb_setup, cal.xgb_round = cal.xgb_round
    cal.seconds = time.perf_counter() - t0
    return cal


def _measure(key: tuple, fn) -> Any:
    if key not in _MEASURED:
        _MEASURED[key] = fn()
    return _MEASURED[key]


def _pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(int(n), 1))))


@contextlib.contextmanager
def _isolated_rng() -> Iterator[None]:
    """The probe leaves the global random states as it found them (a run's results never
    depend on whether it probed)."""
    import random

    import torch

    state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(state)
            random.setstate(py_state)


def _timed(fn, warm: bool = False) -> float:
    """Seconds of ``fn()``; with ``warm``, after one untimed call (a library's first call
    pays its set-up), and the best of three when it is quick (noise is then relatively large)."""
    if warm:
        fn()
    best = _once(fn)
    if best < 0.05:
        best = min(best, _once(fn), _once(fn))
    return best


def _once(fn, cpu: bool = True) -> float:
    """CPU seconds of ``fn()``: the probe's work is single-threaded, so this is what a worker
    pays on a core of its own, whatever the machine's load at the moment of probing (wall
    seconds swung the same plan 3x with the load); ``cpu=False``: wall seconds, for work on
    several threads."""
    clock = time.process_time if cpu else time.perf_counter
    t0 = clock()
    fn()
    return clock() - t0


def _probe_data(n: int, width: int, classes: int, seed: int = 0):
    """Balanced classes shifted apart on a few features, the rest noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.standard_normal((n, width), dtype=np.float32)
    centres = rng.standard_normal((classes, min(width, 20)), dtype=np.float32)
    X[:, : centres.shape[1]] += centres[y]
    return X, y


def _probe_logistic(width: int, n_lo: int, n_hi: int, spec: ProbeSpec) -> Line:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(n):
        X, y = _probe_data(n, width, spec.classes)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
        return _timed(lambda: model.fit(X, y), warm=n == n_lo)

    return Line.through(n_lo, fit(n_lo), n_hi, fit(n_hi), width)


def _probe_elasticnet(width: int, n_lo: int, n_hi: int, spec: ProbeSpec) -> Line:
    """Seconds of one saga epoch (the elastic net's solver)."""
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    epochs = 3

    def fit(n):
        X, y = _probe_data(n, width, spec.classes)
        saga = LogisticRegression(solver="saga", l1_ratio=0.5, max_iter=epochs, tol=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence, and penalty's deprecation
            if not _l1_ratio_alone():
                saga.set_params(penalty="elasticnet")
            model = make_pipeline(StandardScaler(), saga)
            return _timed(lambda: model.fit(X, y), warm=n == n_lo) / epochs

    return Line.through(n_lo, fit(n_lo), n_hi, fit(n_hi), width)


def _l1_ratio_alone() -> bool:
    import sklearn

    return tuple(int(x) for x in sklearn.__version__.split(".")[:2]) >= (1, 8)


def _probe_xgboost(width: int, n_lo: int, n_hi: int, spec: ProbeSpec) -> tuple[Line, Line]:
    """Set-up and per-round seconds from one and three rounds on n_hi rows, three on n_lo."""
    from xgboost import XGBClassifier

    rounds = 3

    def fit(n, r, width=width):
        X, y = _probe_data(n, width, spec.classes)
        model = XGBClassifier(
            n_estimators=r,
            subsample=0.8,
            colsample_bytree=0.5,
            tree_method="hist",
            max_bin=64,
            n_jobs=1,
            verbosity=0,
            max_depth=4,
            learning_rate=0.1,
        )
        return _timed(lambda: model.fit(X, y))

    fit(2 * spec.classes, 1, 8)  # the library's first call pays its set-up
    one, many, fewer_rows = fit(n_hi, 1), fit(n_hi, rounds), fit(n_lo, rounds)
    per_round = max((many - one) / (rounds - 1), 1e-6)
    setup = Line(0.0, max(one - per_round, 0.0) / n_hi, width)
    per_round_lo = max((fewer_rows - setup.at(n_lo)) / rounds, 1e-6)
    return setup, Line.through(n_lo, per_round_lo, n_hi, per_round, width)


def _probe_torch(width: int, n_lo: int, n_hi: int, spec: ProbeSpec) -> Line:
    """Seconds of one epoch of ``PROBE_MODELS`` stacked heads on the run's encoder."""
    import torch

    from ..encoders import MLPEncoder
    from .heads import StackedMLP, train_stacked

    epochs = 2
    recipe = HeadRecipe(epochs=epochs, batch_size=spec.head_batch, patience=0)

    def fit(n):
        X, y = (torch.from_numpy(a) for a in _probe_data(n, width, spec.classes))
        encoder = MLPEncoder(width, spec.hidden, spec.dropout)
        net = StackedMLP(encoder, width, spec.classes, PROBE_MODELS)
        train = torch.ones(PROBE_MODELS, n, dtype=torch.bool)
        run = lambda: train_stacked(net, X, y.long(), train, None, recipe)  # noqa: E731
        return _timed(run, warm=n == n_lo) / epochs

    return Line.through(n_lo, fit(n_lo), n_hi, fit(n_hi), width)


_FIELDS = {"elasticnet": "saga_epoch", "xgboost": "xgb_round", "torch": "torch_epoch"}
_PROBERS = {
    "logistic": _probe_logistic,
    "elasticnet": _probe_elasticnet,
    "xgboost": _probe_xgboost,
    "torch": _probe_torch,
}


def _probe_ssl(method: str, params: str, spec: ProbeSpec) -> float:
    """Seconds of one pretraining step (two views, forward, backward, optimizer) at the run's
    batch size, with the threads a pretraining there would get: timed on at most
    ``SSL_PROBE_MAX_WIDTH`` genes and scaled by the step's multiply-adds at the run's width."""
    import torch

    from ..methods import build_method
    from ..threads import threads_for
    from ..training import build_optimizer, step_flops

    batch, width = spec.ssl_batch, spec.ssl_width
    probed = min(width, SSL_PROBE_MAX_WIDTH)
    model = build_method(method, probed, **json.loads(params))
    full = step_flops(build_method(method, width, **json.loads(params)), batch)
    pool = torch.from_numpy(_probe_data(max(2 * batch, 64), probed, 2)[0])
    model.fit_augmentations(pool)
    trainable = [p for p in model.trainable_parameters() if p.requires_grad]
    opt = build_optimizer(trainable, **model.optimizer_defaults)
    threads = 1 if spec.ssl_parallel else threads_for(full)

    def step():
        loss = model.loss(pool[:batch]).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    with limit_threads(threads):
        step()  # warm-up: allocations, kernel choice
        seconds = min(_once(step, cpu=threads == 1) for _ in range(2))
    return seconds * full / step_flops(model, batch)


def _probe_preprocessing(spec: ProbeSpec, n: int) -> float:
    """Seconds per value of fitting the run's preprocessing and transforming with it."""
    from ..preprocessing import Preprocessor

    width = max(1, min(spec.raw_width, 4 * PROBE_MAX_WIDTH))
    X = np.abs(_probe_data(n, width, 2)[0]) * 10
    prep = Preprocessor.from_options(json.loads(spec.preprocessing))
    genes = [f"g{i}" for i in range(width)]
    seconds = _once(lambda: prep.fit(X, genes=genes).transform(X, genes))
    return seconds / X.size


def _probe_cell(spec: ProbeSpec, n: int) -> float:
    """A cell's work besides its fits: its inner folds drawn, its test rows scored."""
    from .metrics import classification_metrics

    _, y = _probe_data(n, 1, spec.classes)
    proba = np.full((n, spec.classes), 1.0 / spec.classes)
    classes = np.arange(spec.classes)
    return _timed(lambda: (inner_folds(y, 0, 3), classification_metrics(y, proba, classes)))


def _probe_matmul(n: int = 256, k: int = 1024) -> float:
    a = np.ones((n, k), dtype=np.float32)
    b = np.ones((k, n), dtype=np.float32)
    a @ b
    return 2 * n * n * k / max(min(_once(lambda: a @ b) for _ in range(3)), 1e-9)


# --------------------------------------------------------------------------- the cost model
@dataclass(frozen=True)
class CellSpec:
    """What decides a cell's cost besides its rows and classes."""

    family: str  # logistic, elasticnet, xgboost or torch
    width: int  # features it reads
    grid: int  # hyperparameter settings
    max_folds: int  # inner folds at most
    pretrained: bool = False  # a torch head starting from a pretrained encoder


def _trees(classes: int) -> int:
    return 1 if classes <= 2 else classes  # binary:logistic grows one tree a round


def _mlp_flops(width: int, hidden: tuple[int, ...], classes: int) -> float:
    dims = [width, *hidden, classes]
    return float(sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=True)))


@dataclass
class CostModel:
    """Worker-seconds of each piece of a run's work, from a ``Calibration``."""

    cal: Calibration
    recipe: HeadRecipe = field(default_factory=HeadRecipe)

    def head_epochs(self, n_train: float, n_val: int, pretrained: bool = False) -> Count:
        """Epochs of a torch head on ``n_train`` training rows: every epoch without validation
        rows (or patience), else the epochs holding ``HEAD_STEPS_TO_BEST`` optimizer steps and
        then ``patience + 1`` more (patience in epochs of that length: ``patience_epochs``).
        Steps, not epochs, are what a head needs: with 3 batches an epoch a pretrained encoder
        (at its slower learning rate) improves for all 100 epochs, with 187 (7,479 labelled
        profiles) it stopped after 14 with a patience of 10 epochs. A random-init network stops
        sooner, after at most ``3 (patience + 1)``."""
        r = self.recipe
        if n_val == 0 or r.patience == 0:
            return Count(r.epochs, r.epochs, r.epochs)
        batches = max(1, math.ceil(n_train / max(2, r.batch_size)))
        patience = patience_epochs(r.patience, batches)
        low = min(r.epochs, patience + 1)
        expected = min(r.epochs, patience + 1 + math.ceil(HEAD_STEPS_TO_BEST / batches))
        if not pretrained:
            expected = min(expected, 3 * (patience + 1))
        return Count(expected, low, r.epochs)

    def linear_fit(self, family: str, n: float, width: int, classes: int) -> float:
        if family == "elasticnet":
            line = self.cal.saga_epoch
            scale = width / line.width * classes / self.cal.classes
            return SAGA_EPOCHS.expected * line.at(n, scale)
        widths = list(self.cal.logistic)
        near = min(widths, key=lambda w: abs(math.log(w / width)))
        line = self.cal.logistic[near]
        return line.at(n, width / line.width * classes / self.cal.classes)

    def xgboost_fit(self, n: float, width: int, classes: int, rounds: float) -> float:
        setup, per_round = self.cal.xgb_setup, self.cal.xgb_round
        trees = _trees(classes) / _trees(self.cal.classes)
        return setup.at(n, width / setup.width) + rounds * per_round.at(
            n, width / per_round.width * trees
        )

    def torch_training(
        self, n: float, width: int, classes: int, models: int, epochs: float
    ) -> float:
        line = self.cal.torch_epoch
        flops = _mlp_flops(width, self.cal.hidden, classes) * models
        probed = _mlp_flops(line.width, self.cal.hidden, self.cal.classes) * PROBE_MODELS
        return epochs * line.at(n, flops / probed)

    def cell(self, spec: CellSpec, n: int, n_val: int, classes: int, folds: int | None) -> Span:
        """One cell: (grid x folds) inner-CV fits on the folds' training rows and the final fit
        (the torch heads: per grid entry, the fold models and the final one stacked), and the
        cell's own folds and scores."""
        return self._fits(spec, n, n_val, classes, folds) + Span.of(self.cal.cell_s)

    def _fits(self, spec: CellSpec, n: int, n_val: int, classes: int, folds: int | None) -> Span:
        k = folds or 0
        if spec.family == "torch":
            epochs = self.head_epochs(n - n_val, n_val, spec.pretrained)
            # per grid value its k fold models stacked, then the chosen value's final model
            seconds = (spec.grid if k else 0) * self.torch_training(
                n, spec.width, classes, k, epochs.expected
            ) + self.torch_training(n, spec.width, classes, 1, epochs.expected)
            return Span.of(seconds, epochs)
        n_fold = n * (k - 1) / k if k else 0.0
        cv_fits = spec.grid * k if k and (spec.grid > 1 or spec.family == "xgboost") else 0
        fold_width, width = spec.width, spec.width
        if spec.family in SCREENED:  # each fit on its screened genes (screening.screened)
            fold_width, width = (min(spec.width, screen_width(m)) for m in (n_fold, n))
        if spec.family == "xgboost":  # a fold quantised once, its grid searched by halving
            final = XGB_ROUNDS.expected if k else XGB_DEFAULT_ROUNDS
            grid = GRIDS["xgboost"]  # another size: one group of comparable points
            grid = grid if spec.grid == len(grid) else [{}] * spec.grid
            rounds = searched_rounds(grid, XGB_ROUNDS.expected)
            seconds = k * self.xgboost_fit(n_fold, fold_width, classes, rounds) + self.xgboost_fit(
                n, width, classes, final
            )
            return Span.of(seconds, XGB_ROUNDS)
        fit = self.linear_fit
        seconds = cv_fits * fit(spec.family, n_fold, fold_width, classes) + fit(
            spec.family, n, width, classes
        )
        return Span.of(seconds, SAGA_EPOCHS if spec.family == "elasticnet" else LBFGS)

    def pretraining(self, method: str, n_pool: int, cfg: BenchmarkConfig) -> Span:
        """Up to ``epochs`` passes over the pool's training rows (10% held out), each with a
        validation pass; early stopping may end it after ``patience + 1``."""
        step = self.cal.ssl_step[method]
        n_val = int(round(0.1 * n_pool)) if n_pool >= 20 else 0
        n_train = max(n_pool - n_val, 2)
        steps = math.ceil(n_train / max(2, min(cfg.batch_size, n_train)))
        checked = (n_val + min(n_train, 1024)) / max(2, min(cfg.batch_size, n_train))
        epoch = steps * step + checked * step / 3 + EPOCH_OVERHEAD_S
        low = min(cfg.epochs, cfg.patience + 1) if cfg.patience and n_val else cfg.epochs
        span = Span.of(cfg.epochs * epoch, Count(cfg.epochs, low, cfg.epochs))
        return span + Span.of(PRETRAIN_FIXED_S)

    def forward(self, n: float, width: int, hidden: tuple[int, ...]) -> float:
        """An encoder's forward pass over n profiles (embeddings, random features)."""
        return 2.0 * n * _mlp_flops(width, hidden, 0) / self.cal.flops_per_s


# --------------------------------------------------------------------------- the run's plan
@dataclass
class RunPlan:
    """What a benchmark will run and about how long it will take here: the answer of
    ``exprssl.benchmark(..., dry_run=True)`` and ``exprssl benchmark --dry-run``.

    Counts are of the work still to do (a resumed run skips cached pretrainings and finished
    cells); ``stages`` are wall seconds on ``workers`` workers, ``learners`` and ``approaches``
    the evaluation's worker-seconds.
    """

    splits: int
    seeds: int
    fractions: list[float]
    methods: list[str]
    approaches: list[str]
    pretrain_seeds: int
    pretrainings: int
    pretrainings_cached: int
    cells: int
    cells_finished: int
    cell_groups: int
    workers: int
    stages: dict[str, Span]
    learners: dict[str, float]
    per_approach: dict[str, float]
    labelled: dict[float, int]  # mean labelled profiles of a cell per fraction
    probe_seconds: float
    cell_seconds: dict[tuple, float] = field(default_factory=dict, repr=False)
    pretrain_seconds: list[float] = field(default_factory=list, repr=False)
    approach_learners: dict[str, str] = field(default_factory=dict, repr=False)
    load: float | None = None  # the machine's load average when planned

    @property
    def total(self) -> Span:
        out = Span()
        for span in self.stages.values():
            out = out + span
        return out

    def summary_lines(self) -> list[str]:
        """The plan in three lines (printed at the start of a run)."""
        return [self._counts(), self._estimate(), self._dominant()]

    def describe(self) -> list[str]:
        """Every line of the plan (``--dry-run``): counts, stages, learners, approaches."""
        lines = [self._counts(), self._estimate()]
        lines += [f"  {stage}: {span.text()}" for stage, span in self.stages.items()]
        lines.append(self._dominant())
        for name, seconds in sorted(self.per_approach.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name}: {duration_text(seconds)} of worker time")
        sizes = ", ".join(f"{f:.0%}: {n:,}" for f, n in sorted(self.labelled.items()))
        if sizes:
            lines.append(f"labelled profiles per cell by fraction: {sizes}")
        return lines

    def _counts(self) -> str:
        pre = (
            f"{self.pretrainings} pretraining(s) ({self.splits} split(s) x "
            f"{len(self.methods)} method(s) x {self.pretrain_seeds} pretrain seed(s)"
            + (f", {self.pretrainings_cached} cached" if self.pretrainings_cached else "")
            + ")"
        )
        cells = (
            f"{self.cells:,} cell(s) ({self.splits} split(s) x {self.seeds} seed(s) x "
            f"{len(self.fractions)} fraction(s) x {len(self.approaches)} approach(es)"
            + (f", {self.cells_finished:,} finished" if self.cells_finished else "")
            + ")"
        )
        return f"plan: {pre}; {cells} in {self.cell_groups} group(s) on {self.workers} worker(s)"

    def _estimate(self) -> str:
        parts = ", ".join(f"{k} {duration_text(v.expected)}" for k, v in self.stages.items())
        load = "" if self.load is None else f"; load average now {self.load:.1f}"
        return (
            f"estimate: {self.total.text()} on this machine's idle cores ({parts}; cost model "
            f"probed in {self.probe_seconds:.1f} s{load}: a busy machine takes longer; loading "
            "and the report not included)"
        )

    def _dominant(self) -> str:
        total = sum(self.learners.values())
        if not total:
            return "evaluation: nothing left to run"
        shares = sorted(self.learners.items(), key=lambda kv: -kv[1])
        return "evaluation by learner: " + ", ".join(
            f"{FAMILY_NAMES.get(k, k)} {v / total:.0%}" for k, v in shares
        )

    def evaluation_eta(self, workers: int | None = None) -> RemainingTime:
        """The evaluation bar's remaining time: each cell's modelled seconds, rescaled by the
        finished cells' measured ones."""
        costs = self.cell_seconds
        mean = sum(costs.values()) / len(costs) if costs else 0.0
        return RemainingTime(
            sum(costs.values()),
            min(workers or self.workers, max(self.cell_groups, 1)),
            cost=lambda o: costs.get(cell_key(o.split, o.approach.name, o.fraction, o.seed), mean),
            observed=lambda o: o.seconds,
        )

    def pretraining_eta(self, workers: int | None = None) -> RemainingTime:
        n = len(self.pretrain_seconds)
        return RemainingTime(
            sum(self.pretrain_seconds), min(workers or self.workers, max(n, 1)), n_items=n
        )

    def to_dict(self) -> dict[str, Any]:
        """What the manifest records (``record`` adds the actual seconds)."""
        return {
            "pretrainings": self.pretrainings,
            "pretrainings_cached": self.pretrainings_cached,
            "cells": self.cells,
            "cells_finished": self.cells_finished,
            "workers": self.workers,
            "probe_s": round(self.probe_seconds, 2),
            "load_average": None if self.load is None else round(self.load, 2),
            "stages": {k: v.to_dict() for k, v in self.stages.items()},
            "learners": {k: {"estimated_s": round(v, 2)} for k, v in self.learners.items()},
            "approaches": {k: {"estimated_s": round(v, 2)} for k, v in self.per_approach.items()},
            "assumptions": {
                "xgboost_rounds": XGB_ROUNDS.expected,
                "saga_epochs": SAGA_EPOCHS.expected,
                "extrapolation": list(EXTRAPOLATION),
            },
        }

    def record(self, timings: dict[str, float], tuning) -> dict[str, Any]:
        """``to_dict`` with the actual seconds: wall per stage (``timings``), worker-seconds
        per learner and approach (the ``seconds`` of this run's cells in ``tuning.csv``)."""
        out = self.to_dict()
        for stage, row in out["stages"].items():
            if stage in timings:
                row["actual_s"] = round(timings[stage], 2)
        keys = [cell_key(*k) for k in tuning[["split", "approach", "fraction", "seed"]].values]
        mine = tuning[[k in self.cell_seconds for k in keys]]
        by_approach = mine.groupby("approach")["seconds"].sum()
        for name, row in out["approaches"].items():
            row["actual_s"] = round(float(by_approach.get(name, 0.0)), 2)
        family = {a: self.approach_learners.get(a) for a in by_approach.index}
        for name, row in out["learners"].items():
            row["actual_s"] = round(
                float(sum(s for a, s in by_approach.items() if family[a] == name)), 2
            )
        return out


@dataclass
class Widths:
    """Feature widths the cells read."""

    genes: int  # the preprocessed genes
    latent: int  # an SSL method's embedding
    pca: int
    models: dict[str, tuple[int, int]] = field(default_factory=dict)  # given: (genes, latent)


def approach_spec(a: Approach, widths: Widths) -> CellSpec:
    """The learner family, feature width, grid and inner folds of an approach's cells."""
    if a.kind == "ssl":
        learner, _ = ssl_learner(a)
        genes, latent = widths.models.get(a.method, (widths.genes, widths.latent))
        family = "torch" if learner == "torch" else "logistic"
        width = genes if family == "torch" else latent
        return CellSpec(
            family, width, len(GRIDS[learner]), MAX_FOLDS[learner], pretrained=family == "torch"
        )
    baseline = get_baseline(a.method)
    width = {"pca": widths.pca, "random": widths.latent}.get(baseline.features, widths.genes)
    family = FAMILIES.get(a.method, "logistic")
    return CellSpec(family, width, max(1, len(baseline.grid)), baseline.max_folds)


def run_widths(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan, given=()) -> Widths:
    from .features import PCA_MAX_COMPONENTS

    top = cfg.preprocessing.get("top_k_variance")
    genes = int(min(top or cohort.adata.n_vars, cohort.adata.n_vars))
    latent = int(cfg.encoder["hidden_dims"][-1])
    pool = min(len(s.pool) for s in plan.splits) + sum(src.n_obs for _, src, _ in cohort.sources)
    models = {
        m.name: (
            int((m.card.get("genes") or {}).get("count") or genes),
            int(m.card.get("embedding_dim") or latent),
        )
        for m in given
    }
    return Widths(genes, latent, int(min(PCA_MAX_COMPONENTS, pool - 1, genes)), models)


def plan_work(
    cfg: BenchmarkConfig,
    cohort: Cohort,
    plan: Plan,
    cells: list[GroupJob],
    pending: list[tuple[int, str, int]],
    jobs: int,
    given=(),
    calibration: Calibration | None = None,
) -> RunPlan:
    """The run's plan and its estimate: ``cells`` are the group jobs still to run (the runner's
    ``plan_jobs``), ``pending`` the (split, method, pretrain seed) not yet pretrained; the cost
    model is probed here unless a ``calibration`` is given.

    Returns
    -------
    RunPlan
    """
    widths = run_widths(cfg, cohort, plan, given)
    specs = {a.name: approach_spec(a, widths) for a in plan.approaches}
    rows = _cell_rows(cfg, cohort, cells, specs)
    cal = calibration or probe(_probe_spec(cfg, cohort, plan, widths, specs, rows, pending, jobs))
    model = CostModel(cal, HeadRecipe.check(cfg.finetune))
    costs = {r["key"]: model.cell(specs[r["approach"]], *r["size"]) for r in rows}
    pools = {s.index: len(s.pool) + sum(x.n_obs for _, x, _ in cohort.sources) for s in plan.splits}
    pre = [model.pretraining(m, pools[k], cfg) for k, m, _ in pending]
    workers = max(1, min(jobs, cpu_count()))
    stages = _stages(cfg, cohort, plan, widths, model, pre, rows, costs, workers, jobs)
    learners, per_approach = _totals(rows, costs, specs)
    n_cells = len(plan.splits) * cfg.seeds * len(plan.fractions) * len(plan.approaches)
    return RunPlan(
        splits=len(plan.splits),
        seeds=cfg.seeds,
        fractions=list(plan.fractions),
        methods=list(cfg.methods),
        approaches=[a.name for a in plan.approaches],
        pretrain_seeds=cfg.pretrain_seeds,
        pretrainings=len(pending),
        pretrainings_cached=len(plan.splits) * len(cfg.methods) * cfg.pretrain_seeds - len(pending),
        cells=len(rows),
        cells_finished=n_cells - len(rows),
        cell_groups=len(cells),
        workers=workers,
        stages=stages,
        learners=learners,
        per_approach=per_approach,
        labelled=_labelled(rows),
        probe_seconds=cal.seconds,
        cell_seconds={k: v.expected for k, v in costs.items()},
        pretrain_seconds=[s.expected for s in pre],
        approach_learners={name: spec.family for name, spec in specs.items()},
        load=_load(),
    )


def _load() -> float | None:
    """The one-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _stages(cfg, cohort, plan, widths, model, pre, rows, costs, workers, jobs) -> dict[str, Span]:
    """Wall seconds per stage; the workers' start counted once, by the first stage that has
    tasks for several of them."""
    spawn = Span.of(WORKER_START_S)
    pre_spawn = jobs > 1 and len(pre) > 1
    groups = _group_costs(rows, costs)
    return {
        "pretraining": _scheduled([s.expected for s in pre], pre, workers)
        + (spawn if pre_spawn else Span()),
        "features": _features(cfg, cohort, plan, widths, model),
        "evaluation": _scheduled(groups, list(costs.values()), workers)
        + (spawn if not pre_spawn and jobs > 1 and len(groups) > 1 else Span()),
        "attributions": _attributions(cfg, cohort, plan, widths, model),
    }


def _totals(rows, costs, specs) -> tuple[dict[str, float], dict[str, float]]:
    """The evaluation's expected worker-seconds per learner family and per approach."""
    learners: dict[str, float] = {}
    per_approach: dict[str, float] = {}
    for r in rows:
        seconds = costs[r["key"]].expected
        family = specs[r["approach"]].family
        learners[family] = learners.get(family, 0.0) + seconds
        per_approach[r["approach"]] = per_approach.get(r["approach"], 0.0) + seconds
    return learners, per_approach


def _cell_rows(cfg, cohort, cells: list[GroupJob], specs: dict[str, CellSpec]) -> list[dict]:
    """Per cell still to run: its key, approach, group and size (labelled rows, validation
    rows, classes, inner folds as the cell will draw them)."""
    rows = []
    for g, job in enumerate(cells):
        y_lab = cohort.y[job.lab]
        classes = len(np.unique(y_lab))
        folds: dict[int, int | None] = {}
        for a in job.approaches:
            k = specs[a.name].max_folds
            if k not in folds:
                drawn = inner_folds(y_lab, job.seed, k) if cfg.tune else None
                folds[k] = len(drawn) if drawn else None
            rows.append(
                {
                    "key": cell_key(job.split, a.name, job.fraction, job.seed),
                    "approach": a.name,
                    "group": g,
                    "fraction": job.fraction,
                    "size": (len(job.lab), len(job.val), classes, folds[k]),
                }
            )
    return rows


def _probe_spec(cfg, cohort, plan, widths, specs, rows, pending, jobs) -> ProbeSpec:
    """What to time: each learner family the cells use at its widest (capped) width, lbfgs at
    every width it meets, the torch heads when anything trains a network (features,
    attributions), each SSL method still to pretrain."""
    needed = {(specs[r["approach"]].family, specs[r["approach"]].width) for r in rows}
    if pending or cfg.attributions or any(f == "torch" for f, _ in needed):
        needed |= {("torch", widths.genes), ("logistic", widths.genes)}
    capped = {(f, min(w, PROBE_MAX_WIDTH)) for f, w in needed}
    widest: dict[str, int] = {}
    for family, width in capped:
        widest[family] = max(widest.get(family, 0), width)
    to_time = {(f, w) for f, w in capped if f == "logistic" or w == widest[f]}
    methods = sorted({m for _, m, _ in pending})
    return ProbeSpec(
        classes=len(cohort.classes),
        rows=max([r["size"][0] for r in rows], default=0),
        widths=tuple(sorted(to_time)),
        hidden=tuple(int(h) for h in cfg.encoder["hidden_dims"]),
        dropout=float(cfg.encoder.get("dropout", 0.0)),
        head_batch=int(HeadRecipe.check(cfg.finetune).batch_size),
        ssl=tuple(
            (m, json.dumps({**cfg.encoder, **cfg.method_options.get(m, {})}, sort_keys=True))
            for m in methods
        ),
        ssl_width=widths.genes,
        ssl_batch=cfg.batch_size,
        ssl_parallel=jobs > 1 and len(pending) > 1,
        preprocessing=json.dumps(cfg.preprocessing, sort_keys=True),
        raw_width=int(cohort.adata.n_vars),
    )


def _group_costs(rows: list[dict], costs: dict[tuple, Span]) -> list[float]:
    groups: dict[int, float] = {}
    for r in rows:
        groups[r["group"]] = groups.get(r["group"], 0.0) + costs[r["key"]].expected
    return [groups[g] for g in sorted(groups)]


def _scheduled(tasks: list[float], spans: list[Span], workers: int) -> Span:
    """Wall seconds of ``tasks`` (worker-seconds, in dispatch order) on ``workers`` workers,
    each taking the next task when free; the range scaled as the tasks' summed range."""
    free = [0.0] * min(workers, max(len(tasks), 1))
    for t in tasks:
        heapq.heapreplace(free, free[0] + t)
    wall = max(free)
    total = Span()
    for s in spans:
        total = total + s
    if not total.expected:
        return Span()
    return Span(wall, wall * total.low / total.expected, wall * total.high / total.expected)


def _features(cfg, cohort, plan, widths: Widths, model: CostModel) -> Span:
    """Per split: the preprocessing fit on the pool and applied to every profile, PCA on the
    pool, every encoder's forward pass over every profile (embeddings, random features)."""
    n_all, raw = cohort.adata.n_obs, cohort.adata.n_vars
    families = {get_baseline(b).features for b in cfg.baselines}
    encoders = len(cfg.methods) * cfg.pretrain_seeds + (cfg.seeds if "random" in families else 0)
    hidden = tuple(int(h) for h in cfg.encoder["hidden_dims"])
    seconds = 0.0
    for s in plan.splits:
        n_pool = len(s.pool) + sum(x.n_obs for _, x, _ in cohort.sources)
        seconds += model.cal.element_s * (2 * n_pool + n_all) * raw
        seconds += 4 * (2 * n_pool + n_all) * raw / WRITE_BYTES_PER_S  # the cached matrices
        seconds += len(cfg.methods) * cfg.pretrain_seeds * MODEL_LOAD_S
        seconds += encoders * model.forward(n_all, widths.genes, hidden)
        if "pca" in families:  # randomized SVD: ~16 passes of n x d x (k + 10)
            seconds += 32 * n_pool * widths.genes * (widths.pca + 10) / model.cal.flops_per_s
    return Span.of(seconds)


def _attributions(cfg, cohort, plan, widths: Widths, model: CostModel) -> Span:
    """Per split and fraction: a network re-fit (at most every epoch) with integrated gradients
    over its test rows, and two linear re-fits on the genes (rough: which approaches win, and
    so are explained, is known only after the cells)."""
    if not cfg.attributions or model.cal.torch_epoch is None:
        return Span()
    hidden = tuple(int(h) for h in cfg.encoder["hidden_dims"])
    C = len(cohort.classes)
    seconds = 0.0
    for s in plan.splits:
        for f in plan.fractions:
            n = max(C, int(round(f * len(s.finetune))))
            seconds += ATTRIBUTION_TASK_S + model.torch_training(
                n, widths.genes, C, 1, model.recipe.epochs
            )
            ig_rows = min(IG_ROWS, len(s.test)) * IG_STEPS
            seconds += 3 * model.forward(ig_rows, widths.genes, hidden)
            if model.cal.logistic:
                seconds += 2 * model.linear_fit("logistic", n, widths.genes, C)
    return Span.of(seconds, Count(1, 0.3, 1.5))


def _labelled(rows: list[dict]) -> dict[float, int]:
    sizes: dict[float, list[int]] = {}
    for r in rows:
        sizes.setdefault(r["fraction"], []).append(r["size"][0])
    return {f: int(round(float(np.mean(v)))) for f, v in sizes.items()}
