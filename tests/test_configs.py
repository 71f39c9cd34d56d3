"""The paper's configs (configs/*.yaml) run on small synthetic stand-ins of the files a user
downloads: a Xena-style TCGA table (genes x samples, Ensembl ids with versions, TCGA barcodes)
with its phenotype sheet, and a file in ARCHS4's HDF5 layout with a tissue sheet. Each config is
run as written, with the paths substituted and tiny epochs, splits and fractions given as
flags (which win over the file)."""

from __future__ import annotations

import gzip
import json
from importlib.resources import files
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from exprssl.cli import app
from exprssl.datasets import synthetic
from exprssl.evaluation.schema import Layout, Manifest

CONFIGS = Path(__file__).parents[1] / "configs"
TINY = ["--epochs", "1", "--splits", "1", "--seeds", "1", "--fractions", "0.5,1"]
TINY += ["--baselines", "logreg", "--no-attributions", "--jobs", "1", "--min-class-size", "5"]
runner = CliRunner()


def cli(*args):
    r = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def genes():
    """Genes with one symbol and one Ensembl id in the bundled table: ARCHS4 names them by
    symbol, TCGA by Ensembl id."""
    path = files("exprssl.datasets") / "data" / "gene_ids_human.tsv.gz"
    table = pd.read_csv(path, sep="\t", dtype=str)
    table = table[table["kind"].isin(["symbol", "ensembl"])]
    one = table.groupby(["gene_id", "kind"]).size().unstack().dropna()
    ids = one[(one["symbol"] == 1) & (one["ensembl"] == 1)].index[:200]
    pick = table[table["gene_id"].isin(ids)].pivot(index="gene_id", columns="kind", values="name")
    return pick.loc[ids]


@pytest.fixture(scope="module")
def downloads(tmp_path_factory, genes):
    """The stand-ins, named as the configs name the real files."""
    d = tmp_path_factory.mktemp("downloads")
    # TCGA (Xena): genes x samples, log2(tpm + 0.001), Ensembl ids with version suffixes
    a = synthetic(120, len(genes), 3, counts=False, seed=0, n_informative=60, module_size=10)
    barcodes = [f"TCGA-{i // 10:02d}-{i:04d}-01" for i in range(a.n_obs)]
    table = pd.DataFrame(
        np.log2(np.exp2(a.X.T) + 0.001).round(4),
        index=pd.Index(
            [f"{e}.{k % 20 + 1}" for k, e in enumerate(genes["ensembl"])], name="sample"
        ),
        columns=barcodes,
    )
    with gzip.open(d / "tcga_RSEM_gene_tpm.tsv.gz", "wt") as f:
        table.to_csv(f, sep="\t")
    pheno = pd.DataFrame(
        {
            "sample": barcodes,
            "sample_type_id": 1,
            "sample_type": "Primary Tumor",
            "_primary_disease": [f"cancer type {c[-1]}" for c in a.obs["label"]],
        }
    )
    with gzip.open(d / "TCGA_phenotype_denseDataOnlyDownload.tsv.gz", "wt") as f:
        pheno.to_csv(f, sep="\t", index=False)
    # ARCHS4: data/expression genes x samples (uint32 counts), symbols, GSM ids; 20 samples the
    # tissue sheet does not name (not read)
    c = synthetic(100, len(genes), 3, counts=True, seed=1, n_informative=60, module_size=10)
    gsm = np.array([f"GSM{100000 + i}" for i in range(c.n_obs)])
    with h5py.File(d / "human_gene_v2.latest.h5", "w") as f:
        f.create_dataset("data/expression", data=c.X.T.astype(np.uint32), chunks=(50, 20))
        f.create_dataset("meta/genes/symbol", data=np.array(genes["symbol"], dtype="S"))
        f.create_dataset("meta/samples/geo_accession", data=gsm.astype("S"))
        f.create_dataset("meta/samples/source_name_ch1", data=np.array(c.obs["label"], dtype="S"))
    tissues = pd.DataFrame(
        {"geo_accession": gsm[:80], "tissue": [f"tissue {x[-1]}" for x in c.obs["label"][:80]]}
    )
    tissues.to_csv(d / "archs4_tissues.csv", index=False)
    return d


def config(name: str, tmp: Path, downloads: Path, **changes) -> Path:
    """The config as shipped, its file names pointing at the stand-ins, written to ``tmp``."""
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    for key in ("data", "labels"):
        if key in cfg and (downloads / cfg[key]).exists():
            cfg[key] = str(downloads / cfg[key])
    cfg["out"] = str(tmp / cfg["out"])
    cfg.update(changes)
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg))
    return path


SMALL = {"finetune": {"epochs": 3, "patience": 2}, "bootstrap": 100, "batch_size": 32}


def test_paper_tcga_config(downloads, tmp_path):
    shipped = yaml.safe_load((CONFIGS / "paper_tcga.yaml").read_text())
    assert shipped["methods"] == ["scarf", "byol", "vime"] and shipped["protocol"] == "default"
    path = config("paper_tcga.yaml", tmp_path, downloads, **SMALL)
    out = tmp_path / "bench_tcga"
    assert "plan:" in cli("benchmark", "--config", path, *TINY, "--dry-run")
    assert not out.exists()
    cli("benchmark", "--config", path, *TINY)
    m = Manifest.read(Layout(out).manifest)
    assert m.dataset.n_samples == 120 and len(m.dataset.classes) == 3
    assert m.dataset.n_genes == 200  # Ensembl version suffixes stripped, every gene kept
    results = pd.read_csv(Layout(out).results)
    assert set(results["method"]) == {"scarf", "byol", "vime", "logreg"}
    assert (out / "report.html").exists() and m.estimate["cells"] == 2 * (3 * 2 + 1)


def test_paper_archs4_config_reads_the_sheets_samples(downloads, tmp_path):
    path = config("paper_archs4.yaml", tmp_path, downloads, **SMALL, methods=["scarf"])
    out = tmp_path / "bench_archs4"
    cli("benchmark", "--config", path, *TINY, "--top-genes", "100")  # of the stand-in's 200
    m = Manifest.read(Layout(out).manifest)
    assert m.dataset.n_samples == 80  # the sheet's samples only, not the file's 100
    assert m.dataset.label == "tissue" and len(m.dataset.classes) == 3
    assert (out / "report.html").exists() and (out / "summary.csv").exists()


def test_paper_transfer_configs(downloads, tmp_path):
    store = tmp_path / "archs4.h5ad"
    cli("convert", downloads / "human_gene_v2.latest.h5", "--out", store)
    pre = yaml.safe_load((CONFIGS / "paper_archs4_pretrain.yaml").read_text())
    pre.update(data=str(store), epochs=1, batch_size=32)
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(pre))
    model = tmp_path / "models" / "scarf_archs4"
    cli("pretrain", "--config", tmp_path / "pretrain.yaml", "--method", "scarf", "--out", model)
    assert (model / "weights.safetensors").exists()
    path = config("paper_transfer.yaml", tmp_path, downloads, **SMALL, models=[str(model)])
    out = tmp_path / "bench_transfer"
    cli("benchmark", "--config", path, *TINY)
    results = pd.read_csv(Layout(out).results)
    assert set(results["method"]) == {"scarf_archs4", "logreg"}  # methods: none
    manifest = json.loads(Layout(out).manifest.read_text())
    assert manifest["models"]["scarf_archs4"]["gene_coverage"] >= 0.95  # symbols <-> Ensembl
