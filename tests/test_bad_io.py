"""Round four of bad input (issue 28), the disk and the processes: a write that runs out of room
is one line and leaves nothing half-written; a result file damaged between two runs is checked
and its cells recomputed; a pretraining source that is the cohort adds none of its profiles;
SIGTERM leaves no worker and no shared-memory entry behind. Cases: ``tests/bad_inputs.py``."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from bad_inputs import (
    DAMAGED_RESULT_CASES,
    DISK_FULL_CASES,
    NO_ROOM_CASES,
    POOL_SOURCE_CASES,
    good_counts,
    snapshot,
    tiny_cohort,
)
from typer.testing import CliRunner

import exprssl
from exprssl.cli import app
from exprssl.datasets import synthetic
from exprssl.evaluation.cohort import _row_hashes, load_cohort
from exprssl.evaluation.config import BenchmarkConfig, resolve_config
from exprssl.evaluation.planning import plan_benchmark
from exprssl.evaluation.results import ResultStore
from exprssl.evaluation.runner import run_benchmark
from exprssl.evaluation.schema import CELL_KEY
from exprssl.io import write_h5ad
from exprssl.utils import no_room_cause

runner = CliRunner()
SRC = str(Path(exprssl.__file__).parents[1])  # this checkout's exprssl, for child processes


def leftovers(root: Path) -> list[Path]:
    """What a write that failed half-way leaves: temporary files and directories, partial
    stores, a model moved aside."""
    marks = (".tmp", ".partial", ".old-")
    return [p for p in root.rglob(".*") if any(m in p.name for m in marks)]


# ------------------------------------------------------------------ a write out of room
@pytest.mark.parametrize("name", sorted(NO_ROOM_CASES))
def test_no_room_cause_reads_every_library_s_words(name):
    case = NO_ROOM_CASES[name]
    cause = no_room_cause(case.error)
    assert (cause if cause is None else cause.split(":")[0]) == case.cause


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's directory: a 60 x 80 counts table, its sample sheet, a pretrained model."""
    root = tmp_path_factory.mktemp("user")
    frame = good_counts(60, 80)
    frame.to_csv(root / "counts.csv")
    sheet = pd.DataFrame({"sample": frame.index, "tissue": ["lung", "liver", "skin"] * 20})
    sheet.to_csv(root / "sheet.csv", index=False)
    r = runner.invoke(
        app,
        ["pretrain", "--method", "scarf", "--epochs", "1", "--data", str(root / "counts.csv")]
        + ["--orientation", "samples_in_rows", "--out", str(root / "given"), "--no-progress"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    return root


def _limited(kib: int):
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (kib * 1024, kib * 1024))

    return limit


@pytest.mark.slow  # a child process per command, then the command again
@pytest.mark.parametrize("name", sorted(DISK_FULL_CASES))
def test_a_write_out_of_room_is_one_line_and_the_same_command_then_succeeds(name, user, tmp_path):
    case = DISK_FULL_CASES[name]
    for f in ("counts.csv", "sheet.csv"):
        shutil.copy(user / f, tmp_path / f)
    out = tmp_path / case.out
    fill = {"data": tmp_path / "counts.csv", "labels": tmp_path / "sheet.csv", "out": out}
    args = [a.format(model=user / "given", **fill) for a in case.args]
    if name == "pretrain":  # an earlier model there must survive the failed replacement
        shutil.copytree(user / "given", out)
        args.append("--overwrite")
    before = snapshot(tmp_path)
    env = {**os.environ, "PYTHONPATH": SRC, "EXPRSSL_DEBUG": ""}
    r = subprocess.run(
        [sys.executable, "-m", "exprssl.cli", *args],
        preexec_fn=_limited(case.limit_kib),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    errors = [line for line in r.stderr.splitlines() if line.startswith("exprssl: error:")]
    assert r.returncode == 2, r.stderr
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert str(out) in errors[0] and "file too large" in errors[0], errors[0]
    assert leftovers(tmp_path) == []
    after = snapshot(tmp_path)
    assert {k: after.get(k) for k in before} == before, "a file that was there changed"
    rerun = runner.invoke(app, args, catch_exceptions=False)  # with room: the same command
    assert rerun.exit_code == 0, rerun.output
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------ damaged results on resume
def _tiny(data: Path, out: Path) -> BenchmarkConfig:
    return BenchmarkConfig(
        data=str(data),
        label="label",
        out=str(out),
        methods=[],
        baselines=["logreg"],
        fractions=[0.5, 1.0],
        splits=1,
        seeds=1,
        jobs=1,
        bootstrap=100,
        attributions=False,
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    data = tiny_cohort(root)
    run_benchmark(_tiny(data, root / "whole"), progress=False)
    return data, root / "whole"


def _damaged_copy(finished, name: str, tmp_path: Path) -> Path:
    _, whole = finished
    case = DAMAGED_RESULT_CASES[name]
    out = tmp_path / "resumed"
    shutil.copytree(whole, out)
    case.damage(out / case.file)
    return out


@pytest.mark.parametrize("name", sorted(DAMAGED_RESULT_CASES))
def test_resume_recomputes_the_cells_whose_records_are_damaged(name, finished, tmp_path, caplog):
    out = _damaged_copy(finished, name, tmp_path)
    with caplog.at_level(logging.WARNING, logger="exprssl"):
        store = ResultStore(out)
    lost = DAMAGED_RESULT_CASES[name].lost
    assert store.recomputed == lost and len(store.done) == 2 - lost
    said = [r.getMessage() for r in caplog.records if "missing or damaged" in r.getMessage()]
    assert len(said) == 1 and f"{lost} finished cell" in said[0], said
    for frame in (store.results(), store.predictions(), store.tuning()):
        keys = frame.assign(approach="logreg")[CELL_KEY].drop_duplicates()
        assert len(keys) == 2 - lost


@pytest.mark.parametrize("name", ["results_cut_in_half", "predictions_truncated"])
def test_the_rerun_of_a_damaged_run_equals_an_uninterrupted_run(name, finished, tmp_path):
    data, whole = finished
    out = _damaged_copy(finished, name, tmp_path)
    run_benchmark(_tiny(data, out), progress=False)
    for f in ("results.csv", "summary.csv", "tuning.csv"):
        a, b = pd.read_csv(out / f), pd.read_csv(whole / f)
        pd.testing.assert_frame_equal(
            a.drop(columns="seconds", errors="ignore"), b.drop(columns="seconds", errors="ignore")
        )
    order = [*CELL_KEY, "test_index"]
    a, b = (pd.read_parquet(d / "predictions.parquet") for d in (out, whole))
    pd.testing.assert_frame_equal(
        a.sort_values(order, ignore_index=True), b.sort_values(order, ignore_index=True)
    )


# ------------------------------------------------------------------ the cohort as a source
@pytest.fixture(scope="module")
def cohort_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    frame = good_counts(60, 80)
    data = ad.AnnData(frame.astype(np.float32))
    data.obs["tissue"] = ["lung", "liver", "skin"] * 20
    write_h5ad(data, root / "cohort.h5ad")
    return root, frame


@pytest.mark.parametrize("name", sorted(POOL_SOURCE_CASES))
def test_a_source_adds_no_cohort_profile_to_any_pool(name, cohort_file, tmp_path, caplog):
    root, frame = cohort_file
    case = POOL_SOURCE_CASES[name]
    source = case.make(frame)
    write_h5ad(ad.AnnData(source.astype(np.float32)), tmp_path / "source.h5ad")
    cfg = BenchmarkConfig(
        data=str(root / "cohort.h5ad"),
        label="tissue",
        out=str(tmp_path / "out"),
        pretrain_data=[str(tmp_path / "source.h5ad")],
        splits=2,
    )
    if case.error is not None:
        with pytest.raises(case.error, match=case.expect) as e:
            load_cohort(cfg)
        assert "\n" not in str(e.value) and "source.h5ad" in str(e.value)
        return
    with caplog.at_level(logging.WARNING, logger="exprssl"):
        cohort = load_cohort(cfg)
    pooled = sum(src.n_obs for _, src, _ in cohort.sources)
    assert pooled == case.kept
    removed = [r for r in caplog.records if "the cohort's own" in r.getMessage()]
    assert len(removed) == (case.kept < len(source))
    cohort_rows = _row_hashes(cohort.adata.X)
    source_rows = {h for _, src, _ in cohort.sources for h in _row_hashes(src.X)}
    plan = plan_benchmark(resolve_config(cfg, len(cohort.labelled)), cohort)
    for s in plan.splits:  # no split's test profile is in its pool
        assert not source_rows & {cohort_rows[i] for i in s.test}


# ------------------------------------------------------------------ SIGTERM
def _group(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and /dev/shm")
def test_sigterm_leaves_no_worker_and_no_shared_memory(tmp_path):
    data = tmp_path / "syn.h5ad"
    write_h5ad(synthetic(300, 200, 4, seed=0, n_informative=40, module_size=5), data)
    cmd = [sys.executable, "-m", "exprssl.cli", "benchmark", "--data", str(data)]
    cmd += ["--label", "label", "--methods", "none", "--baselines", "logreg,mlp", "--splits"]
    cmd += ["2", "--seeds", "2", "--jobs", "2", "--no-attributions", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": SRC}
    p = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "out")],
        start_new_session=True,  # its own process group: what must be empty afterwards
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 300
        while not any("loky" in _cmdline(q) and "popen" in _cmdline(q) for q in _group(p.pid)):
            assert p.poll() is None and time.monotonic() < deadline, "no worker started"
            time.sleep(0.2)
        time.sleep(1.0)  # the workers have tasks and memory-mapped inputs
        p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _group(p.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {q: _cmdline(q)[:80] for q in _group(p.pid)}
        assert not left, f"still running 5 s after SIGTERM: {left}"
        assert p.wait(5) == 128 + signal.SIGTERM
        mine = [e for e in os.listdir("/dev/shm") if f"-{p.pid}-" in e or f"_{p.pid}_" in e]
        assert mine == [], mine
        assert p.stderr.read().decode().splitlines()[-1] == "terminated"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
