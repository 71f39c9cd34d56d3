"""Out-of-core pretraining under a memory cap smaller than the data.

Writes a synthetic store (``--samples`` x ``--genes`` float32, bigger than ``--cap-mb``), then
pretrains SCARF on it for one epoch in a child process whose memory is capped by a cgroup
(v2, or v1's memory controller; needs permission to create one, e.g. root in a container).
Without cgroup access it still runs and reports the child's peak RSS, uncapped.

    python benchmarks/memory_cap.py [--samples 150000] [--genes 2000] [--cap-mb 1024] [--in-memory]

``--in-memory`` is the control: the same run with the matrix loaded whole, which the cap kills.

Its last line is ``memory_cap: data_mb=D cap_mb=C peak_rss_mb=P capped=yes|no mode=M exit=0``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from exprssl.store import STORE_FORMAT, _start_store

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from exprssl import SSLModel
    from exprssl.store import ExpressionStore
    data = sys.argv[1]
    if sys.argv[2] == "in-memory":  # the control: the whole matrix in memory, as without a store
        s = ExpressionStore(data)
        data = s.rows(np.arange(s.n_samples))
    SSLModel(
        "scarf",
        epochs=1,
        batch_size=256,
        method_params={"hidden_dims": [256, 256]},
        progress=False,
        patience=0,
    ).fit(data)
    status = open("/proc/self/status").read()
    print("peak_rss_mb", int(status.split("VmHWM:")[1].split()[0]) // 1024)
""")


def write_store(path: Path, n: int, d: int, block: int = 4096) -> None:
    rng = np.random.default_rng(0)
    _start_store(
        path,
        n,
        np.dtype(np.float32),
        256,
        "gzip-1",
        [f"S{i}" for i in range(n)],
        pd.DataFrame(index=[f"G{i}" for i in range(d)]),
        {"format": STORE_FORMAT},
    )
    with h5py.File(
        path, "r+"
    ) as f:  # the store layout `exprssl convert` writes, filled block by block
        for s0 in range(0, n, block):
            s1 = min(n, s0 + block)
            f["X"][s0:s1] = rng.gamma(2.0, 50.0, (s1 - s0, d)).astype(np.float32)


def make_cgroup(cap_bytes: int) -> Path | None:
    """A fresh memory cgroup capped at ``cap_bytes`` (swap included), or None without permission."""
    name = f"exprssl-memcap-{os.getpid()}"
    for root, limits in (
        (Path("/sys/fs/cgroup"), ("memory.max", "memory.swap.max")),
        (Path("/sys/fs/cgroup/memory"), ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")),
    ):
        if (
            not (root / "cgroup.procs").exists()
            or not (root / limits[0]).exists()
            and root.name != "memory"
        ):
            continue
        group = root / name
        try:
            group.mkdir()
            (group / limits[0]).write_text(str(cap_bytes))
            try:
                (group / limits[1]).write_text(str(cap_bytes) if "memsw" in limits[1] else "0")
            except OSError:
                pass  # no swap accounting: the cap still bounds RAM
            return group
        except OSError:
            if group.exists():
                group.rmdir()
    return None


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--samples", type=int, default=150_000)
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--cap-mb", type=int, default=1024)
    p.add_argument("--dir", default=None, help="where to write the store (default: a temp dir)")
    p.add_argument(
        "--in-memory", action="store_true", help="control: load the matrix whole instead"
    )
    args = p.parse_args()

    data_mb = args.samples * args.genes * 4 / 2**20
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store = Path(tmp) / "store.h5ad"
        print(f"writing a {data_mb:.0f} MB store ({args.samples} x {args.genes}) ...", flush=True)
        write_store(store, args.samples, args.genes)
        group = make_cgroup(args.cap_mb * 2**20)
        print(
            "memory cap: "
            + (f"{args.cap_mb} MB via {group}" if group else "none (no cgroup access)"),
            flush=True,
        )

        def enter_group():
            if group is not None:
                (group / "cgroup.procs").write_text(str(os.getpid()))

        try:
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(store),
                    "in-memory" if args.in_memory else "stream",
                ],
                capture_output=True,
                text=True,
                preexec_fn=enter_group,
            )
        finally:
            if group is not None:
                group.rmdir()
        peak = next(
            (line.split()[1] for line in out.stdout.splitlines() if line.startswith("peak_rss_mb")),
            "nan",
        )
        if out.returncode:
            print(out.stderr[-2000:] or f"killed by signal {-out.returncode} (over the cap)")
        print(
            f"memory_cap: data_mb={data_mb:.0f} cap_mb={args.cap_mb} peak_rss_mb={peak} "
            f"capped={'yes' if group else 'no'} mode={'in-memory' if args.in_memory else 'stream'} "
            f"exit={out.returncode}"
        )


if __name__ == "__main__":
    main()
