"""Training-step throughput of every SSL method at TCGA shape, on this machine's CPU (or GPU).

Measures, per method: samples/s of a full training step (augmentation + forward + backward +
Adam), the share of step time spent in augmentation, and the achieved fraction of this
machine's fp32 matmul peak (model FLOPs counted by torch's FlopCounterMode). For comparison it
times SCARF with the paper's reference-style corruption: a per-sample Python loop over
``randperm`` with uniform replacement, both as a whole step and as the corruption alone. Each
method is also timed under bf16 autocast (what ``--precision bf16-mixed`` runs) on a CPU with
native bf16 (AVX512-BF16 or AMX), where bf16 GEMMs are several times faster than fp32; elsewhere
torch emulates them hundreds of times slower, so that column is skipped, and the output says
so. Times are medians over steps, so a busy machine skews them less. A last measurement is
preprocessing alone, which a streamed store pays per sample on top of the step.

    python benchmarks/throughput.py [--genes 20000] [--batch 256] [--steps 10]

Its last line is exactly ``summary: speedup_vs_loop=X.X peak_fraction=0.XX``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from exprssl.augment import Corruptor
from exprssl.methods import available, build_method
from exprssl.preprocessing import Preprocessor
from exprssl.training import build_optimizer, native_bf16


def matmul_peak(n: int = 2048, reps: int = 10, device: str = "cpu", dtype=torch.float32) -> float:
    """Best-of GEMM FLOP/s: the ceiling a dense-MLP training step can approach."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


class LoopUniformCorruptor(nn.Module):
    """The reference implementations' corruption: a Python loop over samples, randperm each."""

    def __init__(self, rate: float, low: torch.Tensor, high: torch.Tensor):
        super().__init__()
        self.rate, self.low, self.high = rate, low, high

    def forward(self, x):
        n, d = x.shape
        k = int(self.rate * d)
        x_corrupt = x.clone()
        mask = torch.zeros_like(x, dtype=torch.bool)
        for i in range(n):
            idx = torch.randperm(d)[:k]
            x_corrupt[i, idx] = self.low[idx] + torch.rand(k) * (self.high[idx] - self.low[idx])
            mask[i, idx] = True
        return x_corrupt, mask


def _corruptors(method: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    found = []
    for parent in method.modules():
        for name, child in parent.named_children():
            if isinstance(child, Corruptor):
                found.append((parent, name, child))
    return found


def time_method(
    method: nn.Module, X: torch.Tensor, batch: int, steps: int, bf16: bool = False
) -> dict:
    """Median over steps (robust to a busy machine) of a full step's and its corruption's time."""
    opt = build_optimizer(
        [p for p in method.trainable_parameters() if p.requires_grad], **method.optimizer_defaults
    )
    aug_time = [0.0]
    starts: dict[int, float] = {}

    def pre(mod, args):
        starts[id(mod)] = time.perf_counter()

    def post(mod, args, out):
        aug_time[0] += time.perf_counter() - starts.pop(id(mod))

    hooks = []
    for _, _, child in _corruptors(method):
        hooks += [child.register_forward_pre_hook(pre), child.register_forward_hook(post)]
    for h in (m for m in method.modules() if isinstance(m, LoopUniformCorruptor)):
        hooks += [h.register_forward_pre_hook(pre), h.register_forward_hook(post)]

    gen = torch.Generator().manual_seed(0)

    def step(i: int):
        idx = torch.randint(0, X.shape[0], (batch,), generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = method.loss(X[idx]).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        method.on_train_batch_end(i, steps + 2)

    method.train()
    for i in range(2):  # warm-up: allocator, kernel selection
        step(i)
    with FlopCounterMode(display=False) as counter:
        step(2)
    flops = counter.get_total_flops()
    step_times, aug_times = [], []
    for i in range(steps):
        aug_time[0] = 0.0
        t0 = time.perf_counter()
        step(i)
        step_times.append(time.perf_counter() - t0)
        aug_times.append(aug_time[0])
    for h in hooks:
        h.remove()
    elapsed = statistics.median(step_times)
    return {
        "step_s": elapsed,
        "samples_per_s": batch / elapsed,
        "flops": flops,
        "aug_fraction": statistics.median(aug_times) / elapsed,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--genes", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument(
        "--pool", type=int, default=2048, help="training rows (corruption's marginal pool)"
    )
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--methods", default=",".join(available()))
    args = p.parse_args()

    torch.manual_seed(0)
    X = torch.randn(args.pool, args.genes)
    bf16 = native_bf16() is not False  # unknown (no /proc/cpuinfo): time it, as before
    peak = matmul_peak()
    peak_bf16 = f"{matmul_peak(dtype=torch.bfloat16) / 1e9:.1f}" if bf16 else "skipped"
    print(
        f"threads={torch.get_num_threads()} genes={args.genes} batch={args.batch} "
        f"fp32 matmul peak={peak / 1e9:.1f} GFLOP/s (bf16: {peak_bf16})"
    )
    if not bf16:
        print(
            "bf16-mixed skipped: this CPU has no native bf16 (no AVX512-BF16 or AMX; torch uses "
            f"{torch.backends.cpu.get_cpu_capability()}), where emulated bf16 matmuls run hundreds "
            "of times slower than fp32"
        )
    print(
        f"{'method':<12}{'samples/s':>12}{'step ms':>10}{'GFLOP/step':>12}{'% peak':>9}{'% aug':>8}"
        f"{'bf16-mixed samples/s':>22}"
    )
    results = {}
    for name in args.methods.split(","):
        r = {}
        for autocast in (
            (False, True) if bf16 else (False,)
        ):  # --precision bf16-mixed: autocast, fp32 weights
            torch.manual_seed(0)
            method = build_method(name, args.genes)
            method.fit_augmentations(X)
            r[autocast] = time_method(method, X, args.batch, args.steps, bf16=autocast)
        r, r_bf16 = r[False], r.get(True)
        r["peak_fraction"] = r["flops"] / r["step_s"] / peak
        results[name] = r
        bf16_column = (
            f"{r_bf16['samples_per_s']:>13.0f} "
            f"({r_bf16['samples_per_s'] / r['samples_per_s']:.1f}x)"
            if r_bf16
            else f"{'skipped':>13}"
        )
        print(
            f"{name:<12}{r['samples_per_s']:>12.0f}{1e3 * r['step_s']:>10.1f}"
            f"{r['flops'] / 1e9:>12.2f}"
            f"{100 * r['peak_fraction']:>9.1f}{100 * r['aug_fraction']:>8.1f}{bf16_column}"
        )

    # SCARF with the reference-style loop corruption (uniform replacement, randperm per sample)
    torch.manual_seed(0)
    scarf = build_method("scarf", args.genes, replacement="uniform")
    scarf.fit_augmentations(X)
    low, high = X.min(0).values, X.max(0).values
    for parent, name, child in _corruptors(scarf):
        setattr(parent, name, LoopUniformCorruptor(child.rate, low, high))
    loop = time_method(scarf, X, args.batch, max(3, args.steps // 3))
    print(
        f"{'scarf-loop':<12}{loop['samples_per_s']:>12.0f}{1e3 * loop['step_s']:>10.1f}"
        f"{loop['flops'] / 1e9:>12.2f}{100 * loop['flops'] / loop['step_s'] / peak:>9.1f}"
        f"{100 * loop['aug_fraction']:>8.1f}"
    )

    # the corruption alone, one batch, vs the loop: what vectorising buys before the GEMMs dilute it
    xb = X[: args.batch].contiguous()
    corruptors = {
        source: Corruptor(0.3, source).fit(X) for source in ("marginal", "uniform", "batch_permute")
    }
    corruptors["loop"] = LoopUniformCorruptor(0.3, low, high)
    times = {}
    for source, c in corruptors.items():
        ts = []
        for _ in range(max(5, args.steps)):
            t0 = time.perf_counter()
            c(xb)
            ts.append(time.perf_counter() - t0)
        times[source] = statistics.median(ts[1:])
    print(
        "corruption alone, median ms: "
        + ", ".join(f"{k} {1e3 * v:.1f}" for k, v in times.items())
        + " | vs loop: "
        + ", ".join(f"{k} {times['loop'] / v:.2f}x" for k, v in times.items() if k != "loop")
    )

    # what a streamed store costs per sample besides the step: preprocessing, in one process
    counts = torch.poisson(torch.full((min(args.pool, 2048), args.genes), 20.0)).numpy()
    prep = Preprocessor().fit(counts[:512])
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        prep.transform(counts)
        ts.append(time.perf_counter() - t0)
    print(
        f"preprocessing (CPM, log2, z-score) alone: {len(counts) / min(ts):.0f} samples/s per "
        "process"
    )

    speedup = (
        results["scarf"]["samples_per_s"] / loop["samples_per_s"]
        if "scarf" in results
        else float("nan")
    )
    min_frac = min(r["peak_fraction"] for r in results.values())
    print(f"summary: speedup_vs_loop={speedup:.1f} peak_fraction={min_frac:.2f}")


if __name__ == "__main__":
    main()
