"""A compendium at ARCHS4 scale, end to end: make, convert, pretrain one SCARF epoch, embed.

Builds a synthetic file in ARCHS4's layout (``data/expression`` genes x samples, uint32 counts,
gzip, chunked by blocks of genes and samples; ``meta/genes/symbol``,
``meta/samples/geo_accession``), converts it with ``exprssl convert``, pretrains one SCARF epoch
by streaming the store, and embeds every sample. Each stage runs in its own process so its peak
RSS is its own. Prints, per size: source and store size, conversion time and rate, peak RSS per
stage, the store's streaming rate (read + decompress + preprocess, no training) against the
training step's rate, epoch time and embedding rate. Give two sizes to see that peak RSS does not
grow with the number of samples:

    python benchmarks/compendium.py --samples 20000,40000 --genes 2000
    python benchmarks/compendium.py --samples 200000 --genes 20000      # ~16 GB raw, about an hour

Counts: per gene a log-normal mean, per sample a depth factor, Poisson draws. 8 blocks of 1,000
samples are drawn and gzip-compressed once, and the file is tiled with them (drawing and
compressing 4e9 values would take longer than the conversion being measured): every 1,000-sample
block repeats one of 8, which changes no chunk's size or cost. Files go to ``--dir`` (default a
temporary directory) and are removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_CHUNK = (2000, 1000)  # genes x samples per gzip chunk of the synthetic source (assumed)


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


# ------------------------------------------------------------------------ stages (one process each)
def stage_make(path: Path, n: int, d: int, seed: int = 0) -> dict:
    import zlib

    import h5py
    import numpy as np

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    gc, width = min(SOURCE_CHUNK[0], d), min(SOURCE_CHUNK[1], n)
    means = rng.lognormal(0.0, 2.0, d)  # many genes near zero, a few in the thousands
    pool = [
        rng.poisson(means[:, None] * rng.lognormal(0.0, 0.3, width)[None, :]).astype(np.uint32)
        for _ in range(8)
    ]

    def chunks_of(block):  # each block's gzip chunks, compressed once: writing is then I/O only
        padded = np.zeros((-(-d // gc) * gc, width), dtype=np.uint32)
        padded[:d] = block
        return [zlib.compress(padded[g0 : g0 + gc].tobytes(), 4) for g0 in range(0, d, gc)]

    compressed = [chunks_of(b) for b in pool]
    with h5py.File(path, "w") as f:
        dset = f.create_dataset(
            "data/expression",
            shape=(d, n),
            dtype=np.uint32,
            chunks=(gc, width),
            compression="gzip",
            compression_opts=4,
        )
        for s0 in range(0, n, width):
            k = int(rng.integers(len(pool)))
            if s0 + width <= n:
                for i, g0 in enumerate(range(0, d, gc)):
                    dset.id.write_direct_chunk((g0, s0), compressed[k][i])
            else:
                dset[:, s0:] = pool[k][:, : n - s0]
        f.create_dataset(
            "meta/genes/symbol", data=np.array([f"GENE{i}" for i in range(d)], dtype="S")
        )
        f.create_dataset(
            "meta/samples/geo_accession", data=np.array([f"GSM{i}" for i in range(n)], dtype="S")
        )
    return {"seconds": time.perf_counter() - t}


def stage_convert(src: Path, out: Path, top_genes: int | None) -> dict:
    from exprssl.store import convert

    t = time.perf_counter()
    convert(src, out, top_genes=top_genes)
    return {"seconds": time.perf_counter() - t}


def stage_stream(store_path: Path, max_rows: int) -> dict:
    """Rows/s the store delivers to training (read, decompress, preprocess, shuffle), no step."""
    from exprssl.preprocessing import Preprocessor
    from exprssl.store import ExpressionStore, StreamingRows

    store = ExpressionStore(store_path)
    prep = Preprocessor().fit(store.rows(store.sample_rows(2000)), genes=store.genes)
    t, rows = time.perf_counter(), 0
    for batch in StreamingRows(store, prep, 256):
        rows += len(batch)
        if rows >= max_rows:
            break
    return {"rows_per_s": rows / (time.perf_counter() - t)}


def stage_step(n_genes: int, batch: int = 256, steps: int = 8) -> dict:
    """Samples/s of SCARF's training step (augment, forward, backward, Adam) at this width, and
    its FLOPs (torch's counter): what the store has to keep up with."""
    import statistics

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from exprssl.methods import build_method
    from exprssl.threads import limit_threads, threads_for
    from exprssl.training import build_optimizer, step_flops

    torch.manual_seed(0)
    X = torch.randn(2048, n_genes)
    method = build_method("scarf", n_genes)
    method.fit_augmentations(X)
    opt = build_optimizer(method.parameters(), **method.optimizer_defaults)

    def step():
        loss = method.loss(X[torch.randint(0, len(X), (batch,))]).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with limit_threads(threads_for(step_flops(method, batch))):  # as training runs it
        step()
        with FlopCounterMode(display=False) as counter:
            step()
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        threads = torch.get_num_threads()
    return {
        "samples_per_s": batch / statistics.median(times),
        "flops_per_sample": counter.get_total_flops() / batch,
        "threads": threads,
    }


def stage_pretrain(store_path: Path, model_dir: Path) -> dict:
    from exprssl import SSLModel

    t = time.perf_counter()
    m = SSLModel("scarf", epochs=1, batch_size=256, patience=0, progress=False).fit(store_path)
    seconds = time.perf_counter() - t
    m.save(model_dir, overwrite=True)
    return {"seconds": seconds}


def stage_embed(store_path: Path, model_dir: Path) -> dict:
    from exprssl import SSLModel

    m = SSLModel.load(model_dir)
    t = time.perf_counter()
    Z = m.transform(store_path)
    return {"seconds": time.perf_counter() - t, "rows": int(len(Z))}


STAGES = {
    "make": stage_make,
    "convert": stage_convert,
    "stream": stage_stream,
    "step": stage_step,
    "pretrain": stage_pretrain,
    "embed": stage_embed,
}


def run_stage(name: str, *args) -> dict:
    """Run one stage in a fresh interpreter; its result and its own peak RSS."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import compendium "
        f"as c; r = c.STAGES[{name!r}](*json.loads(sys.argv[1])); r['peak_rss_mb'] = "
        "c.peak_rss_mb(); print('RESULT', json.dumps(r))"
    )
    argv = json.dumps([str(a) if isinstance(a, Path) else a for a in args])
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, argv], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"stage {name} failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[7:])
    result["wall_s"] = time.perf_counter() - t
    print(
        f"  {name:<9} {result['wall_s']:8.1f} s  peak RSS {result['peak_rss_mb']:7.0f} MB",
        flush=True,
    )
    return result


def run_size(n: int, d: int, work: Path, top_genes: int | None, stream_rows: int) -> dict:
    src, store, model = (
        work / f"archs4_{n}x{d}.h5",
        work / f"store_{n}x{d}.h5ad",
        work / f"model_{n}x{d}",
    )
    print(f"{n} samples x {d} genes in {work}", flush=True)
    r = {"samples": n, "genes": d}
    if not src.exists():
        r["make"] = run_stage("make", src, n, d)
    r["convert"] = run_stage("convert", src, store, top_genes)
    r["stream"] = run_stage("stream", store, min(stream_rows, n))
    r["step"] = run_stage("step", top_genes or d)
    r["pretrain"] = run_stage("pretrain", store, model)
    r["embed"] = run_stage("embed", store, model)
    r["source_gb"], r["store_gb"] = src.stat().st_size / 1e9, store.stat().st_size / 1e9
    r["raw_gb"] = n * d * 4 / 1e9
    return r


def table(results: list[dict]) -> str:
    rows = [
        ("samples x genes", lambda r: f"{r['samples']:,} x {r['genes']:,}"),
        ("source (ARCHS4 layout, gzip-4)", lambda r: f"{r['source_gb']:.2f} GB"),
        (
            "store (.h5ad, blosc-zstd)",
            lambda r: f"{r['store_gb']:.2f} GB (raw uint32 {r['raw_gb']:.1f} GB)",
        ),
        (
            "conversion",
            lambda r: (
                f"{r['convert']['seconds']:.0f} s, {r['samples'] / r['convert']['seconds']:,.0f} "
                "samples/s"
            ),
        ),
        (
            "streaming (read+decompress+preprocess)",
            lambda r: f"{r['stream']['rows_per_s']:,.0f} samples/s",
        ),
        (
            "SCARF training step",
            lambda r: (
                f"{r['step']['samples_per_s']:,.0f} samples/s "
                f"({r['step']['flops_per_sample'] / 1e6:.0f} MFLOP/sample)"
            ),
        ),
        ("one epoch, streamed", lambda r: f"{r['pretrain']['seconds']:.0f} s"),
        ("embedding", lambda r: f"{r['embed']['rows'] / r['embed']['seconds']:,.0f} samples/s"),
        (
            "peak RSS make / convert",
            lambda r: (
                f"{r.get('make', {}).get('peak_rss_mb', float('nan')):.0f} / "
                f"{r['convert']['peak_rss_mb']:.0f} MB"
            ),
        ),
        (
            "peak RSS stream / pretrain / embed",
            lambda r: (
                f"{r['stream']['peak_rss_mb']:.0f} / "
                f"{r['pretrain']['peak_rss_mb']:.0f} / "
                f"{r['embed']['peak_rss_mb']:.0f} MB"
            ),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [
        f"| {'':<{width}} | " + " | ".join(f"run {i + 1}" for i in range(len(results))) + " |",
        "|" + "-" * (width + 2) + "|" + "|".join("---" for _ in results) + "|",
    ]
    lines += [
        f"| {name:<{width}} | " + " | ".join(fmt(r) for r in results) + " |" for name, fmt in rows
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--samples", default="20000", help="one size, or several comma-separated")
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--top-genes", type=int, default=None, help="select genes at conversion")
    p.add_argument(
        "--stream-rows", type=int, default=50_000, help="rows timed by the streaming stage"
    )
    p.add_argument("--dir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the files")
    args = p.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="exprssl-compendium-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for n in (int(s) for s in args.samples.split(",")):
            results.append(run_size(n, args.genes, work, args.top_genes, args.stream_rows))
            print("RESULT " + json.dumps(results[-1]), flush=True)
            if not args.keep:
                for path in work.glob(f"*_{n}x{args.genes}*"):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results))


if __name__ == "__main__":
    main()
