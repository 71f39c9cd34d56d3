"""Lightning training loop for any registered SSL method.

The method (``exprssl.methods``) owns its networks, augmentations and loss; this module owns
everything around it: batching tensors, optimisers, early stopping on a held-out SSL loss,
collapse monitoring, checkpoints, progress bars and the per-epoch history.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .errors import ConfigError

log = logging.getLogger("exprssl")

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
              "rmsprop": torch.optim.RMSprop}


def build_optimizer(params, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
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


@dataclass
class TrainConfig:
    """Options of the training loop (not of the method); every field is a CLI/YAML option."""

    epochs: int = 50
    batch_size: int = 256
    optimizer: str | None = None  # None: the method's own default
    lr: float | None = None
    weight_decay: float | None = None
    val_fraction: float = 0.1
    patience: int = 10
    seed: int = 0
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str | None = None
    num_workers: int = 0  # processes reading and preprocessing a streamed store (in-memory data need none)
    progress: bool = True
    log_dir: str | None = None

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be >= 2 (BatchNorm needs 2 samples), got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.optimizer is not None and self.optimizer.lower() not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer '{self.optimizer}'; available: {', '.join(OPTIMIZERS)}")

    def to_dict(self) -> dict:
        return asdict(self)


class TensorRows(Dataset):
    """Rows of an in-memory tensor, fetched a whole batch at a time (one gather, no per-sample collate)."""

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
    return DataLoader(TensorRows(X), batch_size=bs, shuffle=shuffle, drop_last=drop_last,
                      collate_fn=_identity, generator=gen if shuffle else None)


def effective_rank(Z: torch.Tensor) -> float:
    """RankMe (Garrido et al. 2023): exp of the entropy of normalised singular values; ~1 means collapse."""
    s = torch.linalg.svdvals(Z.double())
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum() + 1e-12
    return float(torch.exp(-(p * p.log()).sum()))


def embedding_std(Z: torch.Tensor) -> float:
    """Mean per-dimension std of L2-normalised embeddings: 1/sqrt(d) when spread, 0 when collapsed."""
    Zn = torch.nn.functional.normalize(Z.double(), dim=1)
    return float(Zn.std(0).mean())


class SSLLightningModule(L.LightningModule):
    def __init__(self, method: torch.nn.Module, cfg: TrainConfig, total_steps: int,
                 monitor_rows: torch.Tensor | None = None):
        super().__init__()
        self.monitor_rows = monitor_rows
        self.method = method
        self.cfg = cfg
        self.total_steps = max(1, total_steps)
        self.history: list[dict] = []
        self.best_val = math.inf
        self.best_state: dict | None = None
        self._train_losses: list[float] = []
        self._val_losses: list[float] = []
        self._val_n = 0
        self._last_val: dict = {}

    def training_step(self, batch, batch_idx):
        loss, parts = self.method.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.method.name}: training loss became {loss.item()} "
                                     f"at step {self.global_step}; lower the learning rate")
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch.shape[0])
        self._train_losses.append(float(loss.detach()))
        return loss

    def on_train_epoch_start(self):
        # a streamed store's shuffle depends on the epoch; its DataLoader workers hold copies of
        # the dataset made when each epoch's iterator starts (after this hook), so tell it here
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.method.on_train_batch_end(self.global_step, self.total_steps)

    def validation_step(self, batch, batch_idx):
        loss, _ = self.method.loss(batch)
        self._val_losses.append(float(loss) * batch.shape[0])
        self._val_n += batch.shape[0]
        return loss

    def on_validation_epoch_end(self):
        if not self._val_n:
            return
        local = torch.tensor(sum(self._val_losses) / self._val_n, dtype=torch.float64)
        # under DDP every rank sees the same averaged value, so early stopping and the restored
        # best weights agree across processes
        val_loss = float(self.trainer.strategy.reduce(local, reduce_op="mean"))
        self._last_val = {"val_loss": val_loss}
        self._val_losses.clear()
        self._val_n = 0
        self.log("val_loss", val_loss, prog_bar=True)
        if val_loss < self.best_val:
            self.best_val = val_loss
            self.best_state = copy.deepcopy(self.method.state_dict())

    def _collapse_monitors(self) -> dict:
        """Embedding spread on a fixed sample of training rows, in eval mode: a small validation
        set would cap the effective rank at its own size."""
        if self.monitor_rows is None or self.monitor_rows.shape[0] < 2:
            return {}
        was = self.method.training
        self.method.eval()
        with torch.no_grad():
            Z = self.method.embed(self.monitor_rows.to(self.device)).float().cpu()
        self.method.train(was)
        return {"emb_std": embedding_std(Z), "eff_rank": effective_rank(Z)}

    def on_train_epoch_end(self):
        rec = {"epoch": self.current_epoch + 1,
               "train_loss": float(np.mean(self._train_losses)) if self._train_losses else math.nan,
               "val_loss": math.nan, "emb_std": math.nan, "eff_rank": math.nan}
        rec.update(self._last_val)
        rec.update(self._collapse_monitors())
        self._last_val = {}
        self._train_losses.clear()
        self.history.append(rec)
        if rec["eff_rank"] == rec["eff_rank"] and rec["eff_rank"] < 1.5:
            warnings.warn(f"{self.method.name}: embeddings look collapsed at epoch {rec['epoch']} "
                          f"(effective rank {rec['eff_rank']:.2f}, std {rec['emb_std']:.2e})",
                          stacklevel=1)

    def configure_optimizers(self):
        opt_cfg = dict(self.method.optimizer_defaults)
        for key in ("optimizer", "lr", "weight_decay"):
            if getattr(self.cfg, key) is not None:
                opt_cfg[key] = getattr(self.cfg, key)
        params = [p for p in self.method.trainable_parameters() if p.requires_grad]
        return build_optimizer(params, **opt_cfg)


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*isinstance.*treespec.*")


def train_method(method: torch.nn.Module, X: torch.Tensor, cfg: TrainConfig) -> list[dict]:
    """Pretrain ``method`` on the in-memory preprocessed matrix ``X`` (samples x features).

    A seeded ``val_fraction`` of rows is held out: its SSL loss drives early stopping and the
    best-scoring weights are restored at the end.
    """
    cfg.validate()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    n = X.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    n_val = int(round(cfg.val_fraction * n)) if n >= 20 else 0
    if 0 < n_val < 2:
        n_val = 2
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    X_train = X[train_idx]
    train_dl = tensor_loader(X_train, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_dl = tensor_loader(X[val_idx], 1024, shuffle=False) if n_val else None
    return fit_loop(method, train_dl, val_dl, X_train, len(train_dl), cfg)


def train_streaming(method: torch.nn.Module, store, preprocessor, cfg: TrainConfig, *,
                    max_pool: int = 4096, buffer_chunks: int = 8) -> list[dict]:
    """Pretrain from an out-of-core store (``exprssl.store``) in bounded memory.

    Validation rows (``val_fraction``, at most 2,048) and the augmentation pool (at most
    ``max_pool`` rows) are sampled once; everything else streams by shuffled chunks.
    """
    from .store import StreamingRows

    cfg.validate()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    n = store.n_samples
    rng = np.random.default_rng(cfg.seed)
    n_val = min(2048, int(round(cfg.val_fraction * n))) if n >= 20 else 0
    val_idx = np.sort(rng.choice(n, n_val, replace=False)) if n_val else np.array([], dtype=int)
    rest = np.setdiff1d(np.arange(n), val_idx)
    pool_idx = np.sort(rng.choice(rest, min(max_pool, len(rest)), replace=False))
    genes = store.genes
    pool = torch.from_numpy(preprocessor.transform(store.rows(pool_idx), genes))
    stream = StreamingRows(store, preprocessor, min(cfg.batch_size, len(rest)), buffer_chunks=buffer_chunks,
                           seed=cfg.seed, exclude=val_idx)
    # workers read and preprocess disjoint chunks in parallel with training; each holds its own buffer
    train_dl = DataLoader(stream, batch_size=None, num_workers=cfg.num_workers,
                          pin_memory=cfg.num_workers > 0 and torch.cuda.is_available())
    val_dl = None
    if n_val:
        val_dl = tensor_loader(torch.from_numpy(preprocessor.transform(store.rows(val_idx), genes)), 1024,
                               shuffle=False)
    return fit_loop(method, train_dl, val_dl, pool, len(stream), cfg)


def fit_loop(method: torch.nn.Module, train_dl, val_dl, pool: torch.Tensor, steps_per_epoch: int,
             cfg: TrainConfig) -> list[dict]:
    """The Lightning run shared by in-memory and streaming training."""
    _quiet_lightning()
    method.fit_augmentations(pool)
    monitor = pool[torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(cfg.seed))[:1024]]
    module = SSLLightningModule(method, cfg, steps_per_epoch * cfg.epochs, monitor_rows=monitor)
    callbacks: list[L.Callback] = []
    if val_dl is not None and cfg.patience > 0:
        callbacks.append(L.pytorch.callbacks.EarlyStopping("val_loss", patience=cfg.patience, mode="min"))
    if cfg.progress:
        callbacks.append(L.pytorch.callbacks.RichProgressBar(leave=False))
    logger: Any = False
    if cfg.log_dir:
        Path(cfg.log_dir).mkdir(parents=True, exist_ok=True)
        logger = L.pytorch.loggers.CSVLogger(cfg.log_dir, name="", version="")
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(
            dirpath=Path(cfg.log_dir) / "checkpoints", monitor="val_loss" if val_dl else None,
            save_last=True))
    trainer = L.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
        strategy=cfg.strategy, precision=cfg.precision, logger=logger, callbacks=callbacks,
        enable_progress_bar=cfg.progress, enable_model_summary=False, enable_checkpointing=bool(cfg.log_dir),
        num_sanity_val_steps=0, deterministic=True, log_every_n_steps=max(1, min(50, steps_per_epoch)),
        use_distributed_sampler=not isinstance(train_dl.dataset, torch.utils.data.IterableDataset),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.utils.data")
        trainer.fit(module, train_dataloaders=train_dl, val_dataloaders=val_dl)
    if module.best_state is not None:
        method.load_state_dict(module.best_state)
    method.eval()
    return module.history
