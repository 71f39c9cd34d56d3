"""Lightning training loop for any registered SSL method.

The method (``exprssl.methods``) owns its networks, augmentations and loss; this module owns
everything around it: batching tensors, optimisers, early stopping on a held-out SSL loss,
collapse monitoring, checkpoints, progress bars and the per-epoch history.
"""

from __future__ import annotations

import logging
import math
import os
import typing
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, Dataset

from .devices import available_accelerators, gpu_kind, parse_devices
from .errors import ConfigError, TrainingDivergedError
from .losses import LossOutput
from .options import OptionValueError, option, options_class, validate_options
from .outputs import prepare_log_dir
from .threads import limit_threads, threads_for

log = logging.getLogger("exprssl")

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}


def build_optimizer(
    params,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """An optimizer by name; Adam/AdamW use the fused kernel where torch has one for the device:
    one kernel over all parameters instead of a loop over tensors (the first layer alone holds
    5M weights at 20k genes; the loop costs ~5% of a CPU training step)."""
    name = str(optimizer).lower()
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer '{name}'; available: {', '.join(OPTIMIZERS)}")
    kwargs = {"lr": lr, "weight_decay": weight_decay}
    if name == "sgd":
        kwargs["momentum"] = momentum
    if name in ("adam", "adamw"):
        params = list(params)
        try:
            return OPTIMIZERS[name](params, fused=True, **kwargs)
        except RuntimeError:  # a device or torch version without a fused kernel
            pass
    return OPTIMIZERS[name](params, **kwargs)


# ------------------------------------------------------------------------- training options
def _parse_name(v: Any) -> str:
    """A case-insensitive name ('Adam', 'CPU')."""
    if not isinstance(v, str):
        raise OptionValueError("a name")
    return v.lower()


def lightning_strategies() -> tuple[str, ...]:
    """Strategy names Lightning knows: 'auto' and its StrategyRegistry."""
    from lightning.pytorch.strategies import StrategyRegistry

    return ("auto", *StrategyRegistry.available_strategies())


def lightning_precisions() -> tuple[str, ...]:
    """Precision names Lightning accepts ('32-true', 'bf16-mixed', '16', ...), as it lists them."""
    try:
        from lightning.fabric.connector import _PRECISION_INPUT
    except ImportError:  # a Lightning that moved its private alias
        return (
            "64-true",
            "32-true",
            "16-true",
            "16-mixed",
            "bf16-true",
            "bf16-mixed",
            "64",
            "32",
            "16",
            "bf16",
        )
    names = dict.fromkeys(
        str(v) for lit in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(lit)
    )
    return tuple(
        sorted(names, key=lambda v: "-" not in v)
    )  # full names first, then '32', 'bf16', ...


def _parse_precision(v: Any) -> str:
    """Integers (YAML reads ``precision: 16`` as one) become Lightning's string aliases."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str):
        raise OptionValueError("a precision name")
    return v


def _parse_path(v: Any) -> str:
    if not isinstance(v, (str, os.PathLike)) or not str(v):
        raise OptionValueError("a directory path")
    return os.fspath(v)


@options_class("training")
@dataclass
class TrainConfig:
    """Options of the training loop (not of the method); every field is a CLI/YAML option.

    ``validate()`` checks every field's type and range and normalises it in place (``lr: "1e-3"``
    from YAML becomes 0.001); ``from_dict`` does the same for a mapping and refuses unknown keys.
    Messages read ``training: lr must be a finite number in (0, 10], got 1e+30``.
    """

    epochs: int = option(50, "maximum passes over the training samples", ge=1)
    batch_size: int = option(256, "samples per step (BatchNorm needs at least 2)", ge=2)
    optimizer: str | None = option(
        None, "optimizer (default: the method's own)", choices=tuple(OPTIMIZERS), parse=_parse_name
    )
    lr: float | None = option(None, "learning rate (default: the method's own)", gt=0, le=10)
    weight_decay: float | None = option(None, "L2 weight decay (default: the method's own)", ge=0)
    val_fraction: float = option(
        0.1, "fraction of samples held out for early stopping on the SSL loss", ge=0, lt=1
    )
    patience: int = option(
        10, "epochs without a better validation loss before stopping (0: never stop early)", ge=0
    )
    seed: int = option(
        0, "seed of the split, weight init, batches and augmentations", ge=0, le=2**32 - 1
    )
    accelerator: str = option(
        "auto",
        "hardware: auto, cpu, gpu, cuda, mps or tpu (must be present)",
        choices=available_accelerators,
        parse=_parse_name,
        note="available on this machine",
    )
    devices: int | str | list[int] = option(
        "auto", "'auto', a device count (-1: all) or device indices", parse=parse_devices
    )
    num_nodes: int = option(1, "machines in a distributed run", ge=1)
    strategy: str = option(
        "auto", "Lightning strategy name (ddp, ddp_spawn, fsdp, ...)", choices=lightning_strategies
    )
    precision: str | None = option(
        None,
        "Lightning precision (32-true, bf16-mixed, 16-mixed, ...; default: 32-true)",
        choices=lightning_precisions,
        parse=_parse_precision,
    )
    num_workers: int = option(
        0,
        "processes reading and preprocessing a streamed store "
        "(in-memory data need none; at most 256)",
        ge=0,
        le=256,
    )
    progress: bool = option(True, "show a progress bar")
    log_dir: str | None = option(
        None, "directory for the CSV loss log and checkpoints", parse=_parse_path
    )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> TrainConfig:
        """A validated config from a mapping (YAML, CLI flags); unknown keys are refused, naming
        the accepted ones."""
        return validate_options(cls, d, "training")

    def validate(self) -> TrainConfig:
        """Check every field's type and range (one-line ConfigError); normalise values in place."""
        checked = validate_options(type(self), self.to_dict(), "training")
        for f in fields(self):
            setattr(self, f.name, getattr(checked, f.name))
        return self

    def to_dict(self) -> dict:
        return asdict(self)


class TensorRows(Dataset):
    """Rows of an in-memory tensor, fetched a whole batch at a time (one gather, no per-sample
    collate)."""

    def __init__(self, X: torch.Tensor):
        self.X = X

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, i):
        return self.X[i]

    def __getitems__(self, indices):
        return self.X[torch.as_tensor(indices)]


def _identity(batch):
    return batch


def tensor_loader(X: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int = 0) -> DataLoader:
    n = X.shape[0]
    bs = max(2, min(batch_size, n))
    # drop the last incomplete batch in training so BatchNorm never sees a batch of one
    drop_last = shuffle and n > bs
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorRows(X),
        batch_size=bs,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=_identity,
        generator=gen if shuffle else None,
    )


def effective_rank(Z: torch.Tensor) -> float:
    """RankMe (Garrido et al. 2023): exp of the entropy of normalised singular values; ~1 means
    collapse."""
    s = torch.linalg.svdvals(Z.double())
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum() + 1e-12
    return float(torch.exp(-(p * p.log()).sum()))


def embedding_std(Z: torch.Tensor) -> float:
    """Mean per-dimension std of L2-normalised embeddings: 1/sqrt(d) if spread, 0 if collapsed."""
    Zn = torch.nn.functional.normalize(Z.double(), dim=1)
    return float(Zn.std(0).mean())


class EpochMeans:
    """Batch-size-weighted epoch means of named scalars (tensors or floats).

    Each step's tensors are stacked where they live, detached (one small kernel), so a training
    step never waits for the device; ``means()`` moves the epoch to the host in one transfer.
    The names must be the same at every step (a method's loss parts are fixed).
    """

    def __init__(self):
        self._reset()

    def _reset(self) -> None:
        self._tensor_keys: list[str] = []
        self._steps: list[torch.Tensor] = []
        self._float_sums: dict[str, float] = {}
        self._sizes: list[int] = []

    def add(self, values: Mapping[str, torch.Tensor | float], n: int) -> None:
        tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
        self._tensor_keys = list(tensors)
        if tensors:
            self._steps.append(torch.stack([v.detach().float() for v in tensors.values()]))
        for k, v in values.items():
            if k not in tensors:
                self._float_sums[k] = self._float_sums.get(k, 0.0) + float(v) * n
        self._sizes.append(n)

    def means(self) -> dict[str, float]:
        """The means so far (empty before any ``add``), and a reset."""
        total = sum(self._sizes)
        if not total:
            return {}
        out = {}
        if self._steps:
            w = torch.tensor(self._sizes, dtype=torch.float64, device=self._steps[0].device)
            sums = (torch.stack(self._steps).double() * w[:, None]).sum(0) / total
            out = dict(zip(self._tensor_keys, sums.tolist(), strict=True))
        out.update({k: v / total for k, v in self._float_sums.items()})
        self._reset()
        return out


def _not_finite(values: Mapping[str, float]) -> tuple[str, float] | None:
    return next(((k, v) for k, v in values.items() if not math.isfinite(v)), None)


class SSLLightningModule(L.LightningModule):
    """Runs a method's ``loss`` under Lightning and records the per-epoch history.

    History columns: ``epoch``, ``train_loss``, ``val_loss``, then ``train_<part>`` and
    ``val_<part>`` for each part of the method's ``LossOutput``, ``train_<metric>`` for its
    metrics, and the collapse monitors ``emb_std`` and ``eff_rank``. A non-finite loss or
    embedding stops training with ``TrainingDivergedError``.
    """

    def __init__(
        self,
        method: torch.nn.Module,
        cfg: TrainConfig,
        total_steps: int,
        monitor_rows: torch.Tensor | None = None,
    ):
        super().__init__()
        self.monitor_rows = monitor_rows
        self.method = method
        self.cfg = cfg
        self.total_steps = max(1, total_steps)
        self.history: list[dict] = []
        self.best_val = math.inf
        self.best_state: dict | None = None
        self._train, self._val = EpochMeans(), EpochMeans()
        self._part_names: list[str] = []
        self._last_val: dict = {}

    def _diverged(self, what: str, value: float) -> TrainingDivergedError:
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        return TrainingDivergedError(
            f"{self.method.name}: training diverged at epoch {self.current_epoch + 1} ({what} is "
            f"{value:g}); lower the learning rate (now {lr:g}) or check the input scale (exprssl "
            "info shows it)"
        )

    def training_step(self, batch, batch_idx):
        out: LossOutput = self.method.loss(batch)
        n = batch.shape[0]
        self._part_names = list(out.parts)
        self._train.add({"loss": out.total, **out.parts, **out.metrics}, n)
        self.log(
            "train_loss",
            out.total.detach(),
            prog_bar=True,
            on_step=True,
            on_epoch=False,
            batch_size=n,
        )
        return out.total

    def on_train_epoch_start(self):
        # a streamed store's shuffle depends on the epoch; its DataLoader workers hold copies of
        # the dataset made when each epoch's iterator starts (after this hook), so tell it here
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.method.on_train_batch_end(self.global_step, self.total_steps)

    def validation_step(self, batch, batch_idx):
        out: LossOutput = self.method.loss(batch)
        self._val.add({"loss": out.total, **out.parts}, batch.shape[0])
        return out.total

    def _mean_over_processes(self, values: dict[str, float]) -> dict[str, float]:
        """The same averages on every rank under DDP, so early stopping, the restored best
        weights and a divergence stop agree across processes (one all-reduce per epoch)."""
        if self.trainer.world_size <= 1 or not values:
            return values
        reduced = self.trainer.strategy.reduce(
            torch.tensor(list(values.values()), dtype=torch.float64, device=self.device),
            reduce_op="mean",
        )
        return dict(zip(values, reduced.tolist(), strict=True))

    def on_validation_epoch_end(self):
        local = self._mean_over_processes(self._val.means())
        if not local:
            return
        self._last_val = {f"val_{k}": v for k, v in local.items()}
        bad = _not_finite(self._last_val)
        if bad:  # before EarlyStopping sees it: it would stop quietly and keep the weights
            raise self._diverged(f"the validation {bad[0].removeprefix('val_')}", bad[1])
        self.log("val_loss", self._last_val["val_loss"], prog_bar=True)  # EarlyStopping's monitor
        self.log_dict({k: v for k, v in self._last_val.items() if k != "val_loss"})
        if self._last_val["val_loss"] < self.best_val:
            self.best_val = self._last_val["val_loss"]
            self.best_state = _copy_into(self.best_state, self.method.state_dict())

    def _collapse_monitors(self) -> dict:
        """Embedding spread on a fixed sample of training rows, in eval mode: a small validation
        set would cap the effective rank at its own size. Embeddings whose squared norms overflow
        float32 count as diverged: nothing downstream can use them."""
        if self.monitor_rows is None or self.monitor_rows.shape[0] < 2:
            return {}
        was = self.method.training
        self.method.eval()
        with torch.no_grad():
            rows = self.trainer.precision_plugin.convert_input(self.monitor_rows.to(self.device))
            Z = self.method.embed(rows).float()
        self.method.train(was)
        largest = float(Z.abs().max()) if Z.numel() else 0.0
        if not math.isfinite(float(Z.pow(2).sum(1).max())):
            raise self._diverged("the largest embedding value", largest)
        Z = Z.cpu()
        return {"emb_std": embedding_std(Z), "eff_rank": effective_rank(Z)}

    def on_train_epoch_end(self):
        train = {f"train_{k}": v for k, v in self._mean_over_processes(self._train.means()).items()}
        bad = _not_finite(train)
        if bad:
            raise self._diverged(f"the training {bad[0].removeprefix('train_')}", bad[1])
        rec = {
            "epoch": self.current_epoch + 1,
            "train_loss": train.pop("train_loss", math.nan),
            "val_loss": self._last_val.pop("val_loss", math.nan),
        }
        parts = {
            f"train_{p}": train.pop(f"train_{p}") for p in self._part_names if f"train_{p}" in train
        }
        rec.update(parts)
        rec.update({f"val_{p}": self._last_val.get(f"val_{p}", math.nan) for p in self._part_names})
        rec.update(train)  # the metrics (BYOL's train_tau)
        rec.update({"emb_std": math.nan, "eff_rank": math.nan})
        rec.update(self._collapse_monitors())
        self._last_val = {}
        self.log_dict(
            {k: v for k, v in rec.items() if k.startswith("train_") and k != "train_loss"}
        )
        self.history.append(rec)
        if rec["eff_rank"] == rec["eff_rank"] and rec["eff_rank"] < 1.5:
            log.warning(
                "%s: embeddings look collapsed at epoch %d (effective rank %.2f, std %.2e)",
                self.method.name,
                rec["epoch"],
                rec["eff_rank"],
                rec["emb_std"],
            )

    def configure_optimizers(self):
        opt_cfg = dict(self.method.optimizer_defaults)
        for key in ("optimizer", "lr", "weight_decay"):
            if getattr(self.cfg, key) is not None:
                opt_cfg[key] = getattr(self.cfg, key)
        params = [p for p in self.method.trainable_parameters() if p.requires_grad]
        return build_optimizer(params, **opt_cfg)


def check_finite_weights(method: torch.nn.Module) -> None:
    """Refuse weights (parameters and BatchNorm statistics) that are NaN or infinite."""
    bad = [
        name
        for name, t in method.state_dict().items()
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        raise TrainingDivergedError(
            f"{getattr(method, 'name', 'method')}: training diverged: non-finite weights in "
            f"{bad[0]}{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}; lower the learning "
            "rate or check the input scale (exprssl info shows it)"
        )


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*isinstance.*treespec.*")


def holdout_size(n: int, cfg: TrainConfig, limit: int | None = None) -> int:
    """Rows held out for early stopping: ``val_fraction`` of ``n`` (none below 20 samples, at
    least 2 otherwise, at most ``limit``). Refused when too few rows would be left to train on:
    at least two (BatchNorm needs a pair), and a batch's worth when the data allows."""
    n_val = int(round(cfg.val_fraction * n)) if n >= 20 else 0
    n_val = min(max(n_val, 2) if n_val else 0, limit or n)
    n_train = n - n_val
    if n < 2:
        raise ConfigError(f"training needs at least 2 samples, got {n}")
    need = max(2, min(cfg.batch_size, n // 2))  # rows left to train on
    if n_train < need:
        most = max(0.0, (n - need) / n)
        raise ConfigError(
            f"val_fraction {cfg.val_fraction:g} holds out {n_val} of {n} samples for early "
            f"stopping, leaving {n_train} to train on; use val_fraction <= "
            f"{math.floor(most * 100) / 100:g}"
        )
    return n_val


def train_method(method: torch.nn.Module, X: torch.Tensor, cfg: TrainConfig) -> list[dict]:
    """Pretrain ``method`` on the in-memory preprocessed matrix ``X`` (samples x features).

    A seeded ``val_fraction`` of rows is held out: its SSL loss drives early stopping and the
    best-scoring weights are restored at the end. Returns the per-epoch history (see
    ``SSLLightningModule``); raises ``TrainingDivergedError`` when the loss, the embeddings or
    the final weights are not finite.
    """
    cfg.validate()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    n = X.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    n_val = holdout_size(n, cfg)
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    X_train = X[train_idx]
    train_dl = tensor_loader(X_train, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_dl = tensor_loader(X[val_idx], 1024, shuffle=False) if n_val else None
    return fit_loop(method, train_dl, val_dl, X_train, len(train_dl), cfg)


def train_streaming(
    method: torch.nn.Module,
    store,
    preprocessor,
    cfg: TrainConfig,
    *,
    max_pool: int = 4096,
    buffer_chunks: int = 8,
) -> list[dict]:
    """Pretrain from an out-of-core store (``exprssl.store``) in bounded memory.

    Validation rows (``val_fraction``, at most 2,048) and the augmentation pool (at most
    ``max_pool`` rows) are sampled once; everything else streams by shuffled chunks.
    """
    from .store import StreamingRows

    cfg.validate()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    n = store.n_samples
    n_val = holdout_size(n, cfg, limit=2048)
    # drawn from a few random chunks each (ExpressionStore.sample_rows): uniform rows would
    # decompress the whole store twice before training starts
    val_idx = store.sample_rows(n_val, seed=cfg.seed) if n_val else np.array([], dtype=int)
    pool_idx = store.sample_rows(min(max_pool, n - n_val), seed=cfg.seed + 1, exclude=val_idx)
    genes = store.genes
    pool = torch.from_numpy(preprocessor.transform(store.rows(pool_idx), genes))
    stream = StreamingRows(
        store,
        preprocessor,
        min(cfg.batch_size, n - n_val),
        buffer_chunks=buffer_chunks,
        seed=cfg.seed,
        exclude=val_idx,
    )
    # workers read and preprocess disjoint chunks in parallel with training; each holds its own
    # buffer
    train_dl = DataLoader(
        stream,
        batch_size=None,
        num_workers=cfg.num_workers,
        pin_memory=cfg.num_workers > 0 and torch.cuda.is_available(),
    )
    val_dl = None
    if n_val:
        val_dl = tensor_loader(
            torch.from_numpy(preprocessor.transform(store.rows(val_idx), genes)),
            1024,
            shuffle=False,
        )
    return fit_loop(method, train_dl, val_dl, pool, len(stream), cfg)


def native_bf16() -> bool | None:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), from /proc/cpuinfo's
    flags; None where that cannot be read. Without it torch emulates bf16 matmuls, hundreds of
    times slower than float32 (measured 0.3 vs 147 GFLOP/s on an AVX2-only CPU)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(
                (line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None
            )
    except OSError:
        return None
    if flags is None:  # e.g. ARM's cpuinfo says "Features"
        return None
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def _on_cpu(cfg: TrainConfig) -> bool:
    return cfg.accelerator == "cpu" or (cfg.accelerator == "auto" and gpu_kind("auto") is None)


def check_precision(cfg: TrainConfig) -> None:
    """One warning line when a bf16 precision would train on a CPU without native bf16."""
    if str(cfg.precision or "").startswith("bf16") and _on_cpu(cfg) and native_bf16() is False:
        capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()
        log.warning(
            "precision %s: this CPU has no native bf16 (no AVX512-BF16 or AMX; torch uses %s), so "
            "bf16 matmuls are emulated and train far slower than --precision 32-true",
            cfg.precision,
            capability,
        )


def lightning_trainer(cfg: TrainConfig, **kwargs: Any) -> L.Trainer:
    """A Trainer on ``cfg``'s hardware options; what Lightning refuses is a one-line ConfigError."""
    try:
        return L.Trainer(
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            num_nodes=cfg.num_nodes,
            strategy=cfg.strategy,
            precision=cfg.precision,
            **kwargs,
        )
    except (MisconfigurationException, ValueError, TypeError, ImportError) as e:
        # a combination the field checks cannot see (devices=[0, 1] on CPU), or a strategy or
        # precision whose package is missing (deepspeed, transformer-engine)
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"training: Lightning refused accelerator={cfg.accelerator!r}, "
            f"devices={cfg.devices!r}, strategy={cfg.strategy!r}, precision={cfg.precision!r}: "
            f"{first_line}"
        ) from None


def check_hardware_options(cfg: TrainConfig) -> None:
    """Let Lightning judge accelerator, devices, strategy and precision together, before any
    data is read or output written (cheap: a Trainer is built, nothing is run)."""
    _quiet_lightning()
    lightning_trainer(
        cfg,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def _copy_into(buffers: dict | None, state: dict) -> dict:
    """The best weights so far, copied into buffers allocated once: every improving epoch used to
    deep-copy the whole state dict (5M weights at 20k genes), 6% of a small fit's time."""
    if buffers is None:
        return {k: v.detach().clone() for k, v in state.items()}
    for k, v in state.items():
        buffers[k].copy_(v)
    return buffers


def step_flops(method: torch.nn.Module, batch_size: int) -> float:
    """Multiply-adds of one training step, roughly: forward and backward (x3) of two views (x2)
    through every weight, per sample. What decides whether a second thread can pay off."""
    return 6.0 * batch_size * sum(p.numel() for p in method.parameters())


def fit_loop(
    method: torch.nn.Module,
    train_dl,
    val_dl,
    pool: torch.Tensor,
    steps_per_epoch: int,
    cfg: TrainConfig,
) -> list[dict]:
    """The Lightning run shared by in-memory and streaming training."""
    _quiet_lightning()
    check_precision(cfg)
    method.fit_augmentations(pool)
    monitor = pool[
        torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(cfg.seed))[:1024]
    ]
    module = SSLLightningModule(method, cfg, steps_per_epoch * cfg.epochs, monitor_rows=monitor)
    callbacks: list[L.Callback] = []
    if val_dl is not None and cfg.patience > 0:
        callbacks.append(
            L.pytorch.callbacks.EarlyStopping("val_loss", patience=cfg.patience, mode="min")
        )
    if cfg.progress:
        callbacks.append(L.pytorch.callbacks.RichProgressBar(leave=False))
    logger: Any = False
    if cfg.log_dir:
        prepare_log_dir(cfg.log_dir)  # the output rules: never write metrics.csv over a user's file
        logger = L.pytorch.loggers.CSVLogger(cfg.log_dir, name="", version="")
        callbacks.append(
            L.pytorch.callbacks.ModelCheckpoint(
                dirpath=Path(cfg.log_dir) / "checkpoints",
                monitor="val_loss" if val_dl else None,
                save_last=True,
            )
        )
    trainer = lightning_trainer(
        cfg,
        max_epochs=cfg.epochs,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        enable_checkpointing=bool(cfg.log_dir),
        num_sanity_val_steps=0,
        deterministic=True,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
        use_distributed_sampler=not isinstance(train_dl.dataset, torch.utils.data.IterableDataset),
    )
    with warnings.catch_warnings(), limit_threads(threads_for(step_flops(method, cfg.batch_size))):
        warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.utils.data")
        trainer.fit(module, train_dataloaders=train_dl, val_dataloaders=val_dl)
    if module.best_state is not None:
        method.load_state_dict(module.best_state)
    check_finite_weights(method)  # never hand back weights that cannot be saved or used
    method.float()  # '16-true' / '64-true' convert the weights; embedding and saving use float32
    method.eval()
    return module.history
