"""End-to-end SCARF pretraining epochs: exprssl against TabularS3L, side by side in one run.

Times whole pretraining epochs (batching + corruption + forward/backward + optimizer + each
tool's own per-epoch work: exprssl's collapse monitor, the DataLoader workers ts3l starts
every epoch) of

- exprssl: ``SSLModel("scarf")`` with its defaults (encoder 4 x 256, dropout 0.2, 30% corruption);
- TabularS3L (``ts3l``) with its documented Lightning usage: ``SCARFConfig`` + ``SCARFLightning``,
  ``SCARFDataset`` (per-sample corruption in ``__getitem__``), ``TS3LDataModule`` with a random
  sampler, ``Trainer.fit``; the same encoder, head width, dropout, corruption rate, temperature,
  batch size;
- the reference loop shape: a plain PyTorch loop over a ``DataLoader`` whose dataset corrupts
  one sample at a time (``randperm`` + uniform draws, as the paper's reference code does), with
  exprssl's own network and loss, so only the data path differs.

All three see the same seeded synthetic matrix, on the CPU, without validation, early stopping,
logging or checkpoints. A window times a whole fit of 1 epoch and one of 1 + k epochs and keeps
the difference, so one-off setup (preprocessing, model construction, the Trainer) cancels out;
k is ``--epochs`` for the slow tools and ``--exprssl-epochs`` for exprssl, whose epochs are short
enough for setup noise to matter. The tools take turns window by window, so a drifting machine
load hits all of them alike. Samples/s are medians over ``--repeats`` windows; the ratio is the
median of the per-window ratios. Compare ratios, not seconds: the same code runs 2x slower on
one machine than another.

TabularS3L is optional and skipped when absent. Install it next to exprssl with

    pip install ts3l                       # CPU-only machine: pip install -c constraints.txt ts3l

(``constraints.txt`` pins the CPU build of torch, so pip does not pull a CUDA build), then

    python benchmarks/peers.py [--shapes 4096x20000,4096x5000] [--epochs 1] [--repeats 3] \\
        [--threads N]

Its last line is exactly ``summary: ratio_20k=X.X ratio_5k=Y.Y`` (exprssl / TabularS3L samples/s,
keyed by gene count; ``nan`` without ts3l).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

import exprssl
from exprssl.encoders import MLPEncoder, mlp_head
from exprssl.losses import nt_xent
from exprssl.methods import check_method_params

SCARF = check_method_params("scarf")  # exprssl's defaults: the settings every tool below is given
INSTALL_HINT = "pip install ts3l (CPU-only machine: pip install -c constraints.txt ts3l)"


def _quiet() -> None:
    """Lightning's info lines and warnings off (call after importing it: its import sets levels)."""
    for name in (
        "lightning",
        "lightning.pytorch",
        "lightning.fabric",
        "pytorch_lightning",
        "lightning_fabric",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)


def parse_shape(text: str) -> tuple[int, int]:
    try:
        n, g = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"shape '{text}' is not SAMPLESxGENES, e.g. 4096x20000"
        ) from None
    return n, g


def epoch_rate(run: Callable[[int], float], samples_per_epoch: int, epochs: int) -> float:
    """samples/s of one window: ``run(e)`` is the wall time of a whole ``e``-epoch fit, so the
    difference of 1 and 1 + ``epochs`` epochs is the steady-state cost of ``epochs`` epochs
    (NaN when setup noise swamps it: tiny shapes need more epochs)."""
    short, long = run(1), run(1 + epochs)
    return samples_per_epoch * epochs / (long - short) if long > short else float("nan")


def median(values) -> float:
    """Median of the measurable windows (NaN ones dropped), NaN if there are none."""
    finite = [v for v in values if np.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def lead(ours: list[float], theirs: list[float]) -> float:
    """How many times faster exprssl is: the median of per-window ratios (paired in time)."""
    return median(a / b for a, b in zip(ours, theirs, strict=True))


# --------------------------------------------------------------------------- exprssl
def exprssl_runner(adata, batch: int) -> Callable[[int], float]:
    def run(epochs: int) -> float:
        t0 = time.perf_counter()
        model = exprssl.SSLModel(
            "scarf",
            epochs=epochs,
            batch_size=batch,
            val_fraction=0.0,
            patience=0,
            progress=False,
            seed=0,
        )
        model.fit(adata)
        return time.perf_counter() - t0

    return run


# ------------------------------------------------------------------------ TabularS3L
def ts3l_version() -> str | None:
    """Installed and importable ts3l version, or None (the reason printed once)."""
    try:
        import ts3l.pl_modules  # noqa: F401
    except ImportError as e:
        print(f"TabularS3L: skipped ({type(e).__name__}: {e}); install with: {INSTALL_HINT}")
        return None
    return importlib.metadata.version("ts3l")


def ts3l_default_jobs() -> int:
    from ts3l.utils import TS3LDataModule

    return inspect.signature(TS3LDataModule.__init__).parameters["n_jobs"].default


def ts3l_runner(X: np.ndarray, batch: int, jobs: int, root: str) -> Callable[[int], float]:
    from pytorch_lightning import Trainer
    from ts3l.pl_modules import SCARFLightning
    from ts3l.utils import TS3LDataModule
    from ts3l.utils.backbone_utils import MLPBackboneConfig
    from ts3l.utils.embedding_utils import IdentityEmbeddingConfig
    from ts3l.utils.scarf_utils import SCARFConfig, SCARFDataset

    frame = pd.DataFrame(X, columns=[f"g{j}" for j in range(X.shape[1])])
    columns = list(frame.columns)
    hidden = SCARF["hidden_dims"]

    def run(epochs: int) -> float:
        t0 = time.perf_counter()
        config = SCARFConfig(
            task="classification",
            loss_fn="CrossEntropyLoss",
            metric="accuracy_score",
            output_dim=2,
            embedding_config=IdentityEmbeddingConfig(input_dim=X.shape[1]),
            backbone_config=MLPBackboneConfig(
                input_dim=X.shape[1],
                hidden_dims=hidden[0],
                n_hiddens=len(hidden),
                dropout_rate=SCARF["dropout"],
            ),
            pretraining_head_dim=SCARF["proj_hidden"],
            head_depth=2,
            dropout_rate=SCARF["dropout"],
            corruption_rate=SCARF["corruption_rate"],
            tau=SCARF["temperature"],
        )
        module = SCARFLightning(config)
        dataset = SCARFDataset(frame, config=config, continuous_cols=columns, category_cols=[])
        data = TS3LDataModule(
            dataset, dataset, batch_size=batch, train_sampler="random", n_jobs=jobs, drop_last=True
        )
        trainer = Trainer(
            accelerator="cpu",
            max_epochs=epochs,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
        )
        trainer.fit(module, data)
        return time.perf_counter() - t0

    return run


# ---------------------------------------------------------------- reference loop shape
class PerSampleCorruption(Dataset):
    """The reference code's data path: every sample corrupted on its own in ``__getitem__``
    (a ``randperm`` of the genes, uniform draws between each gene's min and max), then collated."""

    def __init__(self, X: torch.Tensor, rate: float):
        self.X, self.k = X, int(rate * X.shape[1])
        self.low, self.span = X.min(0).values, X.max(0).values - X.min(0).values

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, i):
        x = self.X[i]
        idx = torch.randperm(x.shape[0])[: self.k]
        corrupted = x.clone()
        corrupted[idx] = self.low[idx] + torch.rand(self.k) * self.span[idx]
        return x, corrupted


def reference_runner(X: np.ndarray, batch: int) -> Callable[[int], float]:
    data = torch.from_numpy(X)

    def run(epochs: int) -> float:
        t0 = time.perf_counter()
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            MLPEncoder(X.shape[1], SCARF["hidden_dims"], SCARF["dropout"]),
            mlp_head(SCARF["hidden_dims"][-1], SCARF["proj_hidden"], SCARF["proj_dim"]),
        )
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loader = DataLoader(
            PerSampleCorruption(data, SCARF["corruption_rate"]),
            batch_size=batch,
            shuffle=True,
            drop_last=True,
        )
        net.train()
        for _ in range(epochs):
            for x, corrupted in loader:
                loss = nt_xent(net(x), net(corrupted), SCARF["temperature"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return time.perf_counter() - t0

    return run


# ------------------------------------------------------------------------------ main
def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--shapes",
        type=lambda s: [parse_shape(v) for v in s.split(",")],
        default=[(4096, 20_000), (4096, 5_000)],
        help="SAMPLESxGENES[,...] (default 4096x20000,4096x5000)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="timed epochs per window of TabularS3L and the reference loop "
        "(~35 s each at 4096 samples)",
    )
    p.add_argument(
        "--exprssl-epochs", type=int, default=5, help="timed epochs per window of exprssl"
    )
    p.add_argument("--repeats", type=int, default=3, help="timing windows per tool and shape")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads for every tool (default: torch's)"
    )
    p.add_argument(
        "--ts3l-jobs",
        type=int,
        default=None,
        help="TS3LDataModule n_jobs (DataLoader workers; default: the library's own default)",
    )
    p.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the reference loop shape (as slow as ts3l: --no-reference halves the run)",
    )
    args = p.parse_args()
    if min(args.epochs, args.exprssl_epochs, args.repeats) < 1:
        p.error("--epochs, --exprssl-epochs and --repeats must be >= 1")
    threads = args.threads or torch.get_num_threads()
    version = ts3l_version()
    _quiet()
    jobs = (ts3l_default_jobs() if args.ts3l_jobs is None else args.ts3l_jobs) if version else None
    print(
        f"torch {torch.__version__}, {threads} threads | exprssl {exprssl.__version__} | "
        f"ts3l {version or 'absent'}" + (f" (n_jobs={jobs})" if version else "")
    )
    print(
        f"SCARF for every tool: encoder {SCARF['hidden_dims']} dropout {SCARF['dropout']}, "
        f"corruption {SCARF['corruption_rate']}, temperature {SCARF['temperature']}, batch "
        f"{args.batch}, no validation; {args.repeats} windows of {args.exprssl_epochs} (exprssl) / "
        f"{args.epochs} (others) timed epochs"
    )

    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="peers-") as root:
        for n, genes in args.shapes:
            adata = exprssl.datasets.synthetic(n, genes, counts=False, seed=0)
            X = np.ascontiguousarray(exprssl.Preprocessor().fit_transform(adata), dtype=np.float32)
            assert X.shape == (n, genes), f"default preprocessing changed the shape to {X.shape}"
            tools = {"exprssl": exprssl_runner(adata, args.batch)}
            if version:
                tools[f"TabularS3L {version}"] = ts3l_runner(X, args.batch, jobs, root)
            if args.reference:
                tools["reference loop"] = reference_runner(X, args.batch)
            samples_per_epoch = n // args.batch * args.batch
            rates: dict[str, list[float]] = {name: [] for name in tools}
            for _ in range(args.repeats):
                for name, run in tools.items():  # interleaved: machine drift hits every tool alike
                    torch.set_num_threads(threads)  # a tool may change these process-wide settings
                    torch.use_deterministic_algorithms(False)
                    epochs = args.exprssl_epochs if name == "exprssl" else args.epochs
                    rates[name].append(epoch_rate(run, samples_per_epoch, epochs))
            print(f"\n{n} samples x {genes} genes")
            print(f"{'tool':<18}{'samples/s':>11}  {'exprssl is':>12}  windows")
            for name, r in rates.items():
                print(
                    f"{name:<18}{median(r):>11.0f}  {lead(rates['exprssl'], r):>11.1f}x  "
                    + " ".join(f"{v:.0f}" for v in r)
                )
            peer = next((r for name, r in rates.items() if name.startswith("TabularS3L")), None)
            ratios[f"ratio_{genes / 1000:g}k"] = (
                lead(rates["exprssl"], peer) if peer else float("nan")
            )
    if not version:
        print(f"\nTabularS3L was not timed: {INSTALL_HINT}")
    print("summary: " + " ".join(f"{k}={v:.1f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
