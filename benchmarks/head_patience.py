"""What counting a torch head's patience in optimizer steps (``heads.patience_epochs``) saves a
fine-tuning fit, and what it costs its score, in one process.

A seeded TCGA-shaped cohort (``exprssl.datasets.synthetic(n, genes, 19, counts=False)``, 80%
train / 20% test), the paper's 4 x 256 encoder pretrained by SCARF on the train part, then at
each labelled-subset size of ``--labels`` the benchmark's final fine-tuning model
(``learners.train_torch``: default recipe, early stopping on the labelled subset's validation
part) trained twice, interleaved: patience counted in epochs (the rule before) and in steps (the
rule now). Prints per size the epochs, CPU seconds and test balanced accuracy of each, and their
ratios. One thread; ratios travel between machines, seconds do not (say the load).

    python benchmarks/head_patience.py                       # 9,349 x 2,000, 240/1600/7479
    python benchmarks/head_patience.py --n 3000 --labels 300,2300
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

import numpy as np


def counted(losses, passes: list[int]):
    """``losses`` (``heads._validation_losses``), appending to ``passes`` once per epoch."""

    def wrapper(*args, **kwargs):
        passes.append(1)
        return losses(*args, **kwargs)

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=9349)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--labels", default="240,1600,7479")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from exprssl import SSLModel
    from exprssl.datasets import synthetic
    from exprssl.evaluation import heads
    from exprssl.evaluation.heads import HeadRecipe
    from exprssl.evaluation.learners import train_torch
    from exprssl.evaluation.metrics import score
    from exprssl.evaluation.planning import carve_validation
    from exprssl.splits import split_indices

    a = synthetic(args.n, args.genes, 19, counts=False, seed=args.seed)
    y = a.obs["label"].astype("category").cat.codes.to_numpy().astype(np.int64)
    parts = split_indices(y, {"train": 0.8, "test": 0.2}, seed=args.seed)
    train, test = parts["train"], parts["test"]
    model = SSLModel(
        "scarf",
        method_params={"hidden_dims": [256] * 4},
        epochs=args.pretrain_epochs,
        progress=False,
        seed=args.seed,
    ).fit(a[train])
    X = model.preprocessor_.transform(np.asarray(a.X), list(a.var_names)).astype(np.float32)
    encoder = model.method_.encoder
    order = np.random.default_rng(args.seed).permutation(train)
    rule = heads.patience_epochs
    print(f"{args.n} x {args.genes}, 19 classes; load {os.getloadavg()[0]:.1f}")
    for k, n in enumerate(int(s) for s in args.labels.split(",")):
        lab = np.sort(order[:n])
        job = SimpleNamespace(
            lab=lab, val=lab[carve_validation(y[lab], args.seed)], n_classes=19, recipe=HeadRecipe()
        )
        out = {}
        for variant in ("epochs", "steps") if k % 2 == 0 else ("steps", "epochs"):
            epochs: list[int] = []
            real = heads._validation_losses
            heads._validation_losses = counted(real, epochs)
            heads.patience_epochs = rule if variant == "steps" else (lambda p, b: p)
            t = time.process_time()
            net = train_torch(X[lab], y[lab], encoder, {"lr_scale": 1.0}, job, seed=args.seed)
            cpu = time.process_time() - t
            heads._validation_losses, heads.patience_epochs = real, rule
            pred = heads.predict_proba(net, torch.from_numpy(X[test]))[0].argmax(1)
            out[variant] = (len(epochs), cpu, score(y[test], pred, "balanced_accuracy"))
        (e0, c0, s0), (e1, c1, s1) = out["epochs"], out["steps"]
        print(
            f"labels={n}: epochs {e0} -> {e1}, cpu {c0:.1f} -> {c1:.1f} s ({c0 / c1:.2f}x), "
            f"balanced accuracy {s0:.3f} -> {s1:.3f} (test {len(test)}); "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
