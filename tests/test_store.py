"""Out-of-core: conversion to a sample-major store, streaming order and shards, flat memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from exprssl.cli import app
from exprssl.errors import (
    ConfigError,
    DataFileError,
    DuplicateSamplesError,
    OutputPathError,
    TruncatedFileError,
)
from exprssl.preprocessing import Preprocessor
from exprssl.store import (
    LEGACY_STORE_FORMAT,
    STORE_FORMAT,
    ExpressionStore,
    StreamingRows,
    convert,
    is_store,
    open_streamed,
)

IDENTITY = dict(library_size=False, log=False, standardize=False)


def _archs4(path, n_genes=12, n_samples=1000, genes=None):
    """A file in ARCHS4's layout: genes x samples integer counts, gzip, chunked by sample column."""
    rng = np.random.default_rng(0)
    X = rng.poisson(rng.gamma(0.5, 40.0, (n_genes, 1)), (n_genes, n_samples)).astype(np.uint32)
    X[0] = np.arange(n_samples)  # gene 0 tags the sample index
    genes = genes if genes is not None else [f"G{i}" for i in range(n_genes)]
    with h5py.File(path, "w") as f:
        f.create_dataset("data/expression", data=X, chunks=(n_genes, 64), compression="gzip")
        f.create_dataset("meta/genes/symbol", data=np.array(genes, dtype="S"))
        f.create_dataset(
            "meta/samples/geo_accession",
            data=np.array([f"GSM{i}" for i in range(n_samples)], dtype="S"),
        )
    return X


@pytest.fixture
def store(tmp_path):
    X = _archs4(tmp_path / "a.h5")
    convert(tmp_path / "a.h5", tmp_path / "s.h5ad", chunk_rows=50, block_samples=128)
    return ExpressionStore(tmp_path / "s.h5ad"), X


def test_convert_archs4_streams_to_sample_major(store):
    s, X = store
    assert s.shape == (1000, 12) and s.chunk_rows == 50 and s.genes[:2] == ["G0", "G1"]
    np.testing.assert_array_equal(s.rows(np.array([7, 3, 999])), X[:, [7, 3, 999]].T)
    assert is_store(s.path) and s.uns["format"] == STORE_FORMAT and s.samples[5] == "GSM5"
    with h5py.File(
        s.path
    ) as f:  # integer counts stay integers, Blosc-compressed, in whole-row chunks
        assert (
            f["X"].dtype == np.uint32 and f["X"].chunks == (50, 12) and "32001" in f["X"]._filters
        )


def _store_content(path):
    with h5py.File(path) as f:
        return (
            f["X"][:],
            f["obs/_index"][:],
            f["var/_index"][:],
            {k: f["var"][k][:] for k in f["var"]},
        )


def test_convert_selects_genes_and_anndata_opens_the_store(tmp_path):
    import anndata as ad

    genes = [f"ENSG{i:011d}.{i % 3 + 1}" for i in range(40)]
    X = _archs4(tmp_path / "a.h5", n_genes=40, n_samples=300, genes=genes)
    (tmp_path / "genes.txt").write_text(
        "# kept genes\n" + "".join(f"ENSG{i:011d}\n" for i in range(0, 40, 2)) + "NOT_A_GENE\n"
    )
    out = convert(
        tmp_path / "a.h5",
        tmp_path / "s.h5ad",
        genes=tmp_path / "genes.txt",
        top_genes=5,
        chunk_rows=32,
    )
    a = ad.read_h5ad(out, backed="r")
    # the 5 listed genes (even positions) of largest variance of log1p(CPM), in the source's order
    cpm = np.log1p(X / X.sum(0) * 1e6)
    even = np.arange(0, 40, 2)
    top = np.sort(even[np.argsort(-cpm[even].var(axis=1), kind="stable")[:5]])
    assert list(a.var_names) == [f"ENSG{i:011d}" for i in top] and a.obs_names[7] == "GSM7"
    np.testing.assert_allclose(a.var["var_log1p_cpm"], cpm[top].var(axis=1), rtol=1e-4)
    assert a.X.dtype == np.uint32 and a.shape == (300, 5)
    np.testing.assert_array_equal(a.X[10:20], X[top][:, 10:20].T)
    selection = a.uns["exprssl_store"]["gene_selection"]
    assert (
        selection["n_listed"] == 21
        and selection["n_listed_found"] == 20
        and selection["top_genes"] == 5
    )
    assert a.uns["exprssl_store"]["codec"] == "blosc-zstd" and out.stat().st_size < X.size * 4
    a.file.close()
    with pytest.raises(DataFileError, match=r"none\.txt: none of the 1 listed genes is in .*a\.h5"):
        (tmp_path / "none.txt").write_text("FOO\n")
        convert(tmp_path / "a.h5", tmp_path / "t.h5ad", genes=tmp_path / "none.txt")
    assert not (tmp_path / "t.h5ad").exists() and not list(tmp_path.glob(".t.h5ad*"))
    with pytest.raises(ConfigError, match=r"s\.h5: a store is an AnnData file: name it \.h5ad"):
        convert(tmp_path / "a.h5", tmp_path / "s.h5")


def test_interrupted_conversion_resumes_to_identical_content(tmp_path):
    _archs4(tmp_path / "a.h5", n_genes=30, n_samples=1000)
    options = dict(top_genes=20, chunk_rows=64, block_samples=128)
    convert(tmp_path / "a.h5", tmp_path / "whole.h5ad", **options)
    calls = []

    def interrupt(done, total, stage):
        calls.append((done, stage))
        if stage == "converting" and done == 384:  # after 3 of 8 blocks, as a Ctrl-C would
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(tmp_path / "a.h5", tmp_path / "s.h5ad", progress=interrupt, **options)
    assert not (tmp_path / "s.h5ad").exists() and (tmp_path / ".s.h5ad.partial").exists()
    calls.clear()
    convert(
        tmp_path / "a.h5", tmp_path / "s.h5ad", progress=lambda *a: calls.append(a[0::2]), **options
    )
    assert calls[0] == (512, "converting")  # resumed after the 3 blocks done, no gene scan again
    assert not list(tmp_path.glob(".s.h5ad*"))
    for resumed, whole in zip(
        _store_content(tmp_path / "s.h5ad"), _store_content(tmp_path / "whole.h5ad"), strict=True
    ):
        if isinstance(whole, dict):
            assert whole.keys() == resumed.keys()
            for k in whole:
                np.testing.assert_array_equal(resumed[k], whole[k])
        else:
            np.testing.assert_array_equal(resumed, whole)
    # other options do not resume the partial store: it is started again
    with pytest.raises(KeyboardInterrupt):
        convert(tmp_path / "a.h5", tmp_path / "u.h5ad", progress=interrupt, **options)
    calls.clear()
    convert(
        tmp_path / "a.h5",
        tmp_path / "u.h5ad",
        progress=lambda *a: calls.append(a[0::2]),
        **{**options, "top_genes": 10},
    )
    assert calls[0][1] == "scanning genes" and ExpressionStore(tmp_path / "u.h5ad").shape == (
        1000,
        10,
    )


def _legacy_store(path, X):
    """A store as exprssl 0.2 wrote it: X float32 in row chunks, genes and samples as str lists."""
    n, d = X.shape
    with h5py.File(path, "w") as f:
        f.attrs["format"] = LEGACY_STORE_FORMAT
        f.create_dataset("X", data=X, chunks=(min(256, n), d))
        f.create_dataset(
            "genes",
            data=np.array([f"G{i}" for i in range(d)], dtype=object),
            dtype=h5py.string_dtype(),
        )
        f.create_dataset(
            "samples",
            data=np.array([f"S{i}" for i in range(n)], dtype=object),
            dtype=h5py.string_dtype(),
        )


def test_a_0_2_store_still_streams_and_converts(tmp_path):
    X = np.random.default_rng(0).poisson(2.0, (300, 20)).astype(np.float32)
    _legacy_store(tmp_path / "old.h5", X)
    s = open_streamed(tmp_path / "old.h5")
    assert isinstance(s, ExpressionStore) and s.shape == (300, 20) and s.samples[3] == "S3"
    np.testing.assert_array_equal(s.rows(np.array([5, 1])), X[[5, 1]])
    SSLModel_ = __import__("exprssl").SSLModel
    m = SSLModel_(
        "scarf", epochs=1, batch_size=64, method_params={"hidden_dims": [8]}, progress=False
    )
    assert m.fit(tmp_path / "old.h5").transform(tmp_path / "old.h5").shape == (300, 8)
    new = ExpressionStore(convert(tmp_path / "old.h5", tmp_path / "new.h5ad"))
    np.testing.assert_array_equal(new.rows(np.arange(300)), X)


def test_bf16_on_a_cpu_without_it_warns_once(monkeypatch, caplog):
    import exprssl.training as training

    cfg = training.TrainConfig(precision="bf16-mixed", accelerator="cpu")
    monkeypatch.setattr(training, "native_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="exprssl"):
        training.check_precision(cfg)
        training.check_precision(training.TrainConfig(precision="32-true", accelerator="cpu"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "no native bf16" in lines[0] and "\n" not in lines[0]
    monkeypatch.setattr(training, "native_bf16", lambda: True)
    caplog.clear()
    training.check_precision(cfg)
    assert not caplog.records


@pytest.mark.parametrize("kind", ["h5ad", "csr.h5ad", "csv"])
def test_convert_h5ad_and_tables(tmp_path, kind):
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    X = np.random.default_rng(0).poisson(3, (70, 9)).astype(np.float32)
    genes, samples = [f"ENSG{i:011d}.{i}" for i in range(9)], [f"S{i}" for i in range(70)]
    src = tmp_path / f"d.{kind}"
    if kind == "csv":
        pd.DataFrame(X, index=samples, columns=genes).to_csv(src, index_label="sample")
    else:
        a = ad.AnnData(sp.csr_matrix(X) if kind.startswith("csr") else X)
        a.obs_names, a.var_names = samples, genes
        a.write_h5ad(src)
    s = ExpressionStore(
        convert(
            src, tmp_path / "s.h5ad", chunk_rows=16, block_samples=32, orientation="samples_in_rows"
        )
    )
    np.testing.assert_array_equal(s.rows(np.arange(70)), X)
    assert s.genes[:2] == ["ENSG00000000000", "ENSG00000000001"] and s.samples[69] == "S69"


def test_convert_checks_the_source_before_writing(tmp_path):
    _archs4(tmp_path / "a.h5")
    with pytest.raises(OutputPathError, match=r"a\.h5: the output would replace the input"):
        convert(tmp_path / "a.h5", tmp_path / "a.h5")
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputPathError, match=r"d: is a directory"):
        convert(tmp_path / "a.h5", tmp_path / "d")
    with h5py.File(tmp_path / "a.h5", "a") as f:
        f["meta/samples/geo_accession"][3] = b"GSM1"
    with pytest.raises(DuplicateSamplesError, match=r"a\.h5: 1 duplicated sample ids, e\.g\. GSM1"):
        convert(tmp_path / "a.h5", tmp_path / "s.h5ad")
    with h5py.File(tmp_path / "a.h5", "a") as f:
        f["meta/samples/geo_accession"][3] = b"GSM3"
    with h5py.File(tmp_path / "a.h5", "a") as f:  # the same gene twice, once with a version suffix
        del f["meta/genes/symbol"]
        f.create_dataset(
            "meta/genes/symbol",
            data=np.array(
                ["ENSG00000000001.2", "ENSG00000000001.5"] + [f"G{i}" for i in range(10)], dtype="S"
            ),
        )
    with pytest.raises(DataFileError, match=r"a\.h5: duplicated gene ids"):
        convert(tmp_path / "a.h5", tmp_path / "s.h5ad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "d"]


def test_unreadable_rows_are_one_line(store, monkeypatch):
    s, _ = store

    def failing_read(self, key):  # what h5py raises for a chunk that no longer decompresses
        raise OSError("Can't synchronously read data (filter returned failure during read)")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", failing_read)
    with pytest.raises(
        TruncatedFileError, match=r"s\.h5ad: rows could not be read, truncated or corrupt \(Can't"
    ):
        next(s.blocks())


def test_blocks_cover_rows_in_order_in_whole_chunks(store):
    s, X = store
    blocks = list(s.blocks(rows=120))  # rounded down to whole 50-row chunks
    assert [r0 for r0, _ in blocks] == list(range(0, 1000, 100))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), X.T)
    assert s.samples[:2] == ["GSM0", "GSM1"] and len(s.samples) == 1000


def test_stream_visits_every_row_once_per_epoch_in_new_order(store):
    s, _ = store
    prep = Preprocessor(**IDENTITY).fit(s.rows(np.arange(100)), genes=s.genes)
    val = np.array([0, 10, 500])
    ds = StreamingRows(s, prep, batch_size=64, buffer_chunks=4, seed=1, exclude=val)
    epochs = []
    for _ in range(2):
        batches = list(ds)
        assert all(b.shape == (64, 12) for b in batches) and len(batches) == len(ds) == 997 // 64
        epochs.append(np.concatenate([b[:, 0].numpy() for b in batches]).astype(int))
    for seen in epochs:
        assert len(set(seen)) == len(seen) and not set(seen) & set(val)
        assert len(seen) == 997 // 64 * 64  # only the last incomplete batch is dropped
    assert not np.array_equal(epochs[0][:200], epochs[1][:200])


def test_shards_are_disjoint(store):
    s, _ = store
    prep = Preprocessor(**IDENTITY).fit(s.rows(np.arange(100)), genes=s.genes)
    rows = []
    for rank in (0, 1):
        ds = StreamingRows(s, prep, batch_size=10, seed=0, rank=rank, world_size=2)
        rows.append({int(v) for b in ds for v in b[:, 0]})
    assert not rows[0] & rows[1] and len(rows[0] | rows[1]) == 1000


def test_cli_convert_and_pretrain_from_store(tmp_path):
    _archs4(tmp_path / "a.h5", n_genes=30, n_samples=600)
    r = CliRunner().invoke(
        app, ["convert", str(tmp_path / "a.h5"), "--out", str(tmp_path / "s.h5ad")]
    )
    assert r.exit_code == 0, r.output
    assert "600 samples x 30 genes" in r.output
    r = CliRunner().invoke(
        app,
        [
            "pretrain",
            "--method",
            "scarf",
            "--data",
            str(tmp_path / "s.h5ad"),
            "--out",
            str(tmp_path / "m"),
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--no-progress",
            "--set",
            "hidden_dims=[32]",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "streamed from disk" in r.output and (tmp_path / "m" / "weights.safetensors").exists()

    # embedding the store streams it block by block and equals embedding it in memory
    (tmp_path / "labels.csv").write_text(
        "id,batch\n" + "".join(f"GSM{i},b{i % 3}\n" for i in range(0, 600, 2))
    )
    r = CliRunner().invoke(
        app,
        [
            "embed",
            "--model",
            str(tmp_path / "m"),
            "--data",
            str(tmp_path / "s.h5ad"),
            "--out",
            str(tmp_path / "z.h5ad"),
            "--labels",
            str(tmp_path / "labels.csv"),
        ],
    )
    assert r.exit_code == 0, r.output
    import anndata as ad

    from exprssl import SSLModel, read_file

    z = ad.read_h5ad(tmp_path / "z.h5ad")
    assert z.obsm["X_scarf"].shape == (600, 32) and z.obs_names[5] == "GSM5"
    assert z.obs["batch"].iloc[4] == "b1" and z.obs["batch"].isna().sum() == 300
    model = SSLModel.load(tmp_path / "m")
    in_memory = model.transform(read_file(tmp_path / "a.h5"))
    np.testing.assert_allclose(z.obsm["X_scarf"], in_memory, rtol=1e-5, atol=1e-5)
    store = ExpressionStore(tmp_path / "s.h5ad")
    seen = []
    streamed = model.transform(store, progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_array_equal(streamed, z.obsm["X_scarf"])
    assert seen[-1] == (600, 600)
    with pytest.raises(Exception, match="a store has none"):
        model.transform(store, key="X_scarf")


PEAK_SCRIPT = textwrap.dedent("""
    import os, resource, sys, traceback
    from exprssl import SSLModel
    import exprssl.store, exprssl.training  # imported once: every run is a fork of this process

    def peak_mb():  # the run's own peak: a forked child's high-water mark starts at its RSS
        try:
            status = open("/proc/self/status").read()
            return int(status.split("VmHWM:")[1].split()[0]) // 1024
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    for path in sys.argv[1:]:
        pid = os.fork()
        if pid == 0:
            try:
                model = SSLModel("scarf", epochs=1, batch_size=256,
                                 method_params={"hidden_dims": [64]}, progress=False, patience=0)
                model.fit(path, stream=True)
                print("peak_mb", peak_mb(), flush=True)
                os._exit(0)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
        if os.waitpid(pid, 0)[1]:
            sys.exit(f"the run on {path} failed")
""")


def _make_store(path, n, d=500, seed=0):
    """A store as `convert` writes it, filled block by block without holding the matrix."""
    from exprssl.store import _start_store

    rng = np.random.default_rng(seed)
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
    with h5py.File(path, "r+") as f:
        for s0 in range(0, n, 2048):
            s1 = min(n, s0 + 2048)
            f["X"][s0:s1] = rng.gamma(2.0, 2.0, (s1 - s0, d)).astype(np.float32)


def _make_sparse_h5ad(path, n, d=500, seed=0):
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    X = sp.csr_matrix(np.random.default_rng(seed).poisson(0.7, (n, d)).astype(np.float32))
    ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=[f"S{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"G{i}" for i in range(d)]),
    ).write_h5ad(path)


@pytest.mark.parametrize("kind", ["store", "h5ad"])
def test_peak_memory_flat_in_number_of_samples(tmp_path, kind):
    """Training on a store, or a CSR h5ad in backed mode, 4x larger (32 MB -> 128 MB of data as
    dense float32) barely moves peak RSS.

    Both files exceed the fixed samples the run keeps in memory (10,000 rows to fit the
    preprocessing, a 4,096-row augmentation pool, <= 2,048 validation rows); all else streams."""
    paths = []
    for n in (16_000, 64_000):
        path = tmp_path / (f"s{n}.h5ad" if kind == "store" else f"x{n}.h5ad")
        (_make_store if kind == "store" else _make_sparse_h5ad)(path, n)
        paths += [path, path]  # the least of two runs: a one-off 20-60 MB spike (threads' heaps)
    # one interpreter imports torch and exprssl once (~10 s of CPU); each run is a fresh fork
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    runs = [int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("peak_mb")]
    assert len(runs) == 4, out.stdout
    peaks = [min(runs[:2]), min(runs[2:])]
    data_growth_mb = (64_000 - 16_000) * 500 * 4 / 2**20
    # loading the data would add >= 92 MB; streaming adds ~20 MB of per-row bookkeeping (sample
    # ids, index arrays) for the h5ad, and single runs vary by +-15 MB (4 runs each, 2026-11-29)
    assert peaks[1] - peaks[0] < 0.5 * data_growth_mb, (peaks, data_growth_mb)


def _h5ad(path, X, sparse: str | None = None):
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    n, d = X.shape
    obs = pd.DataFrame(
        {"tissue": [f"t{i % 3}" for i in range(n)]}, index=[f"S{i}" for i in range(n)]
    )
    var = pd.DataFrame(index=[f"ENSG{i:011d}.{i % 4 + 1}" for i in range(d)])  # versioned ids
    matrix = {None: X, "csr": sp.csr_matrix(X), "csc": sp.csc_matrix(X)}[sparse]
    ad.AnnData(X=matrix, obs=obs, var=var).write_h5ad(path)


@pytest.mark.parametrize("sparse", [None, "csr"])
def test_h5ad_reads_rows_in_backed_mode(tmp_path, sparse):
    X = np.random.default_rng(0).poisson(1.0, (700, 40)).astype(np.float32)
    X[:, 0] = np.arange(700)
    _h5ad(tmp_path / "a.h5ad", X, sparse)
    s = ExpressionStore(tmp_path / "a.h5ad")
    assert (
        s.shape == (700, 40) and s.chunk_rows == 256 and s.genes[1] == "ENSG00000000001"
    )  # version stripped
    np.testing.assert_array_equal(s.rows(np.array([699, 3, 256])), X[[699, 3, 256]])
    np.testing.assert_array_equal(np.concatenate([b for _, b in s.blocks(rows=300)]), X)
    assert s.samples[:2] == ["S0", "S1"] and list(s.obs["tissue"][:4]) == ["t0", "t1", "t2", "t0"]
    prep = Preprocessor(**IDENTITY).fit(s.rows(np.arange(100)), genes=s.genes)
    seen = np.concatenate(
        [b[:, 0].numpy() for b in StreamingRows(s, prep, batch_size=50, seed=0)]
    ).astype(int)
    assert len(seen) == 700 // 50 * 50 and len(set(seen)) == len(seen)
    assert not np.array_equal(seen[:100], np.arange(100))  # shuffled


def test_h5ad_streaming_errors_name_the_file(tmp_path):
    X = np.ones((10, 4), dtype=np.float32)
    _h5ad(tmp_path / "c.h5ad", X, "csc")
    with pytest.raises(DataFileError, match=r"c\.h5ad: X is stored as csc_matrix.*exprssl convert"):
        ExpressionStore(tmp_path / "c.h5ad")
    (tmp_path / "t.csv").write_text("id,G1\nS1,1\n")
    with pytest.raises(
        ConfigError, match=r"t\.csv: only an exprssl store or an \.h5ad file can be streamed"
    ):
        open_streamed(tmp_path / "t.csv", stream=True)
    assert open_streamed(tmp_path / "t.csv") is None
    with pytest.raises(ConfigError, match="all_leukemia: streaming reads a file on disk"):
        open_streamed("all_leukemia", stream=True)
    assert (
        open_streamed(tmp_path / "c.h5ad") is None
    )  # not streamable: by default it is loaded whole


def test_h5ad_streams_when_asked_or_too_big(tmp_path, monkeypatch):
    import exprssl.store as store_module

    _h5ad(tmp_path / "a.h5ad", np.ones((10, 4), dtype=np.float32))
    assert open_streamed(tmp_path / "a.h5ad") is None  # small: loaded in memory
    assert open_streamed(tmp_path / "a.h5ad", stream=False) is None
    assert isinstance(open_streamed(tmp_path / "a.h5ad", stream=True), ExpressionStore)
    monkeypatch.setattr(store_module, "available_memory", lambda: 100)  # 160 bytes > 100 / 4
    assert isinstance(open_streamed(tmp_path / "a.h5ad"), ExpressionStore)
    assert open_streamed(tmp_path / "a.h5ad", stream=False) is None


def test_cli_pretrain_and_embed_stream_an_h5ad(tmp_path):
    X = np.random.default_rng(1).poisson(3.0, (300, 30)).astype(np.float32)
    _h5ad(tmp_path / "a.h5ad", X, "csr")
    r = CliRunner().invoke(
        app,
        [
            "pretrain",
            "--method",
            "scarf",
            "--data",
            str(tmp_path / "a.h5ad"),
            "--out",
            str(tmp_path / "m"),
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--no-progress",
            "--set",
            "hidden_dims=[16]",
            "--stream",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "300 samples x 30 genes (streamed from disk)" in r.output
    r = CliRunner().invoke(
        app,
        [
            "embed",
            "--model",
            str(tmp_path / "m"),
            "--data",
            str(tmp_path / "a.h5ad"),
            "--out",
            str(tmp_path / "z.h5ad"),
            "--stream",
        ],
    )
    assert r.exit_code == 0, r.output
    import anndata as ad

    from exprssl import SSLModel, read_file

    z = ad.read_h5ad(tmp_path / "z.h5ad")
    assert z.obsm["X_scarf"].shape == (300, 16) and list(z.obs["tissue"][:2]) == [
        "t0",
        "t1",
    ]  # obs kept
    in_memory = SSLModel.load(tmp_path / "m").transform(read_file(tmp_path / "a.h5ad"))
    np.testing.assert_allclose(z.obsm["X_scarf"], in_memory, rtol=1e-5, atol=1e-5)


def test_dataloader_workers_share_the_epoch_and_split_the_rows(store):
    """With DataLoader workers each one streams a disjoint set of chunks; set_epoch (called by
    training each epoch) reaches them, so every epoch is a new order, not epoch 0 again."""
    from torch.utils.data import DataLoader

    s, _ = store
    prep = Preprocessor(**IDENTITY).fit(s.rows(np.arange(100)), genes=s.genes)
    ds = StreamingRows(s, prep, batch_size=50, buffer_chunks=2, seed=0)
    orders = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        seen = np.concatenate(
            [b[:, 0].numpy() for b in DataLoader(ds, batch_size=None, num_workers=2)]
        )
        assert (
            len(seen) == 1000 and len(set(seen.astype(int))) == 1000
        )  # 50-row chunks: no remainder
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1])


def test_pretrain_with_workers(tmp_path):
    from exprssl import SSLModel

    _make_store(tmp_path / "s.h5ad", 1200, d=40)
    m = SSLModel(
        "scarf",
        epochs=2,
        batch_size=100,
        method_params={"hidden_dims": [16]},
        progress=False,
        patience=0,
        num_workers=2,
    ).fit(tmp_path / "s.h5ad")
    assert len(m.history_) == 2 and np.isfinite(m.history_["train_loss"]).all()
    assert m.train_config_.num_workers == 2
    with pytest.raises(ConfigError, match=r"num_workers must be an integer in \[0, 256\]"):
        SSLModel("scarf", num_workers=-1).fit(tmp_path / "s.h5ad")


def test_convert_gene_list_of_symbols_selects_a_source_in_ensembl_ids(tmp_path):
    import anndata as ad

    # TP53, ESR1, MYC, KRAS in versioned Ensembl ids, then two unrelated ids
    genes = [
        "ENSG00000141510.16",
        "ENSG00000091831.3",
        "ENSG00000136997.9",
        "ENSG00000133703.12",
        "ENSG00000000003.15",
        "ENSG00000000005.6",
    ]
    X = _archs4(tmp_path / "a.h5", n_genes=len(genes), n_samples=64, genes=genes)
    (tmp_path / "genes.txt").write_text("MYC\nTP53\nKRAS\n")
    out = convert(
        tmp_path / "a.h5", tmp_path / "s.h5ad", genes=tmp_path / "genes.txt", chunk_rows=32
    )
    a = ad.read_h5ad(out, backed="r")
    assert list(a.var_names) == ["ENSG00000141510", "ENSG00000136997", "ENSG00000133703"]
    np.testing.assert_array_equal(a.X[:], X[[0, 2, 3]].T)
    assert a.uns["exprssl_store"]["gene_selection"]["n_listed_found"] == 3
    a.file.close()


def test_convert_refuses_more_top_genes_than_the_source_has_and_writes_nothing(tmp_path):
    """`convert --top-genes 5000` on fewer genes kept them all without a word (issue 28); it is
    refused as pretrain and benchmark refuse it, before the store is started."""
    from exprssl.errors import ConfigError

    _archs4(tmp_path / "a.h5", n_genes=40, n_samples=200)
    with pytest.raises(ConfigError, match="--top-genes 5000 is more than the 40 genes"):
        convert(tmp_path / "a.h5", tmp_path / "s.h5ad", top_genes=5000, chunk_rows=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]


def test_convert_says_a_listed_symbol_is_ambiguous_not_missing(tmp_path, caplog):
    """MLL2 is an alias of KMT2D and KMT2B, both in the file: 0.3 called it "not in" the file."""
    genes = ["ENSG00000167548", "ENSG00000272333", "ENSG00000141510"] + [
        f"ENSG{i:011d}" for i in range(9)
    ]
    _archs4(tmp_path / "a.h5", n_genes=12, n_samples=200, genes=genes)
    with caplog.at_level("WARNING", logger="exprssl"):
        out = convert(
            tmp_path / "a.h5", tmp_path / "s.h5ad", genes=["MLL2", "TP53", "NOPE1"], chunk_rows=32
        )
    text = caplog.text
    assert "1 of 3 listed genes are not in" in text and "NOPE1" in text
    assert "1 listed genes are ambiguous" in text and "MLL2: " in text
    assert "MLL2" not in text.split("not in")[1].split("\n")[0]
    import anndata as ad

    assert list(ad.read_h5ad(out, backed="r").var_names) == ["ENSG00000141510"]
