"""Model cards (written on save, verified on load) and hub ids, against a local hub cache only."""

from __future__ import annotations

import shutil
import sys

import anndata as ad
import numpy as np
import pytest

from exprssl import SSLModel
from exprssl.card import CARD_FILE, read_card, verify
from exprssl.errors import ConfigError, DataFileError, ModelNotFoundError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    a = ad.AnnData(rng.normal(8, 1, (40, 12)).astype(np.float32))
    a.var_names = [
        "TP53",
        "ESR1",
        "MYC",
        "PTEN",
        "KRAS",
        "EGFR",
        "BRCA1",
        "BRCA2",
        "CDH1",
        "GATA3",
        "FOXA1",
        "ERBB2",
    ]
    a.obs_names = [f"s{i}" for i in range(40)]
    model = SSLModel(
        "scarf",
        epochs=2,
        batch_size=16,
        method_params={"hidden_dims": [8]},
        progress=False,
        val_fraction=0.0,
        seed=5,
    ).fit(a)
    return model.save(tmp_path_factory.mktemp("card") / "model")


def _one_line(e) -> str:
    text = str(e.value)
    assert text and "\n" not in text
    return text


def test_save_writes_a_card_with_data_genes_training_and_hashes(saved):
    meta = read_card(saved)
    assert meta["method"] == "scarf" and meta["seed"] == 5
    assert meta["data_sources"][0]["n_profiles"] == 40 and meta["data_sources"][0]["n_genes"] == 12
    assert len(meta["data_sources"][0]["sha256"]) == 64
    assert meta["genes"] == {
        "count": 12,
        "id_system": "symbol",
        "first": ["TP53", "ESR1", "MYC", "PTEN", "KRAS"],
    }
    assert meta["training"]["epochs"] == 2 and set(meta["training"]["train_loss"]) >= {
        "first",
        "best",
        "last",
    }
    assert set(meta["files_sha256"]) == {
        "config.json",
        "preprocessor.json",
        "genes.txt",
        "weights.safetensors",
        "features_in.txt",
        "history.csv",
        "loss.png",
    }
    text = (saved / CARD_FILE).read_text()
    assert (
        text.startswith("---\n")
        and "## Intended use and limits" in text
        and "identifier system: **symbol**" in text
    )
    assert "| in-memory AnnData | 40 | 12 |" in text
    assert verify(saved)["files_sha256"] == meta["files_sha256"]


def test_load_refuses_changed_weights_with_one_line(saved, tmp_path):
    d = shutil.copytree(saved, tmp_path / "m")
    with open(d / "weights.safetensors", "ab") as f:
        f.write(b"\0")
    with pytest.raises(DataFileError) as e:
        SSLModel.load(d)
    assert (
        _one_line(e)
        == f"{d / 'weights.safetensors'}: sha256 differs from the model card's (the file was "
        "changed or damaged after saving)"
    )


def test_a_model_saved_without_a_card_loads_with_a_warning(saved, tmp_path, caplog):
    d = shutil.copytree(saved, tmp_path / "old")
    (d / CARD_FILE).unlink()
    with caplog.at_level("WARNING", logger="exprssl"):
        m = SSLModel.load(d)
    assert (
        m.card_ is None and f"{d}: no model card (saved by exprssl 0.2 or earlier)" in caplog.text
    )
    m.save(tmp_path / "again")  # saving again adds one (the data is unknown by then)
    assert read_card(tmp_path / "again")["data_sources"] == []


def _fake_hub_cache(tmp_path, monkeypatch, saved, repo="org/expr-model"):
    """The layout huggingface_hub's cache uses:
    models--org--name/{refs/main, snapshots/<commit>/}."""
    constants = pytest.importorskip("huggingface_hub.constants")
    cache = tmp_path / "hub"
    root = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(saved, root / "snapshots" / COMMIT)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return root / "snapshots" / COMMIT


def test_a_hub_id_loads_from_the_local_cache_offline(saved, tmp_path, monkeypatch):
    snapshot = _fake_hub_cache(tmp_path, monkeypatch, saved)
    ref = SSLModel.load(saved)
    for hub_id in ("hf://org/expr-model", f"hf://org/expr-model@{COMMIT}"):
        m = SSLModel.load(hub_id)
        assert m.model_dir_ == str(snapshot) and m.card_["method"] == "scarf"
        X = np.random.default_rng(1).normal(8, 1, (5, 12)).astype(np.float32)
        np.testing.assert_array_equal(m.transform(X), ref.transform(X))
    with pytest.raises(ModelNotFoundError) as e:
        SSLModel.load("hf://org/not-cached")
    assert _one_line(e).startswith(
        "hf://org/not-cached: not found on the hub or in the local cache"
    )
    (snapshot / "genes.txt").write_text("changed\n")
    with pytest.raises(DataFileError, match="genes.txt: sha256 differs"):
        SSLModel.load("hf://org/expr-model")


def test_hub_ids_are_checked_and_the_extra_is_named_when_missing(monkeypatch):
    from exprssl.hub import parse_hub_id

    assert parse_hub_id("hf://org/name@v1") == ("org/name", "v1")
    with pytest.raises(ConfigError, match="not a hub model id"):
        parse_hub_id("hf://justname")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(ConfigError) as e:
        SSLModel.load("hf://org/name")
    assert (
        _one_line(e)
        == "loading or pushing hub models needs huggingface_hub: pip install 'exprssl[hub]'"
    )


def test_push_uploads_a_verified_model_directory(saved, tmp_path, monkeypatch):
    hf = pytest.importorskip("huggingface_hub")
    from exprssl.hub import push_to_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, **kw):
            calls.append(("create", kw))
            return f"https://example.invalid/{kw['repo_id']}"

        def upload_folder(self, **kw):
            calls.append(("upload", kw))

    monkeypatch.setattr(hf, "HfApi", FakeApi)
    url = push_to_hub(saved, "hf://org/expr-model", token="t", private=True)
    assert url.endswith("org/expr-model")
    assert calls[1] == (
        "create",
        {"repo_id": "org/expr-model", "private": True, "exist_ok": True, "repo_type": "model"},
    )
    assert calls[2][1]["folder_path"] == str(saved)
    d = shutil.copytree(saved, tmp_path / "nocard")
    (d / CARD_FILE).unlink()
    with pytest.raises(ModelNotFoundError, match="no model card"):
        push_to_hub(d, "org/x")


def test_cli_push_refuses_a_directory_without_a_card_in_one_line(saved, tmp_path):
    from typer.testing import CliRunner

    from exprssl.cli import app

    d = shutil.copytree(saved, tmp_path / "nocard")
    (d / CARD_FILE).unlink()
    result = CliRunner().invoke(app, ["push", str(d), "org/x"])
    assert result.exit_code == 2 and "no model card" in result.output


def test_cli_embed_takes_a_hub_id(saved, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from exprssl.cli import app
    from exprssl.io import write_h5ad

    _fake_hub_cache(tmp_path, monkeypatch, saved)
    model = SSLModel.load(saved)
    a = ad.AnnData(np.random.default_rng(2).normal(8, 1, (6, 12)).astype(np.float32))
    a.var_names = model.genes_
    a.obs_names = [f"c{i}" for i in range(6)]
    renamed = a.copy()  # TP53, ESR1 as Ensembl ids, MYC as an alias
    renamed.var_names = ["ENSG00000141510.16", "ENSG00000091831", "c-Myc", *model.genes_[3:]]
    write_h5ad(renamed, tmp_path / "cohort.h5ad")
    result = CliRunner().invoke(
        app,
        [
            "embed",
            "--model",
            "hf://org/expr-model",
            "--data",
            str(tmp_path / "cohort.h5ad"),
            "--out",
            str(tmp_path / "e.h5ad"),
        ],
    )
    assert result.exit_code == 0, result.output
    embedded = ad.read_h5ad(tmp_path / "e.h5ad")
    np.testing.assert_allclose(embedded.obsm["X_scarf"], model.transform(a), rtol=1e-5, atol=1e-6)
    # the alignment travels with the embeddings: what was mapped through the table, and how
    alignment = embedded.uns["exprssl"]["gene_alignment"]
    assert "12 of 12 reference genes present" in alignment["summary"]
    mapped = dict(zip(alignment["reference"], alignment["data"], strict=True))
    assert list(alignment["status"]) == ["mapped"] * 3
    assert mapped == {"TP53": "ENSG00000141510", "ESR1": "ENSG00000091831", "MYC": "c-Myc"}


@pytest.mark.parametrize("kind", ["DataFrame", "path"])
def test_fit_transform_records_the_data_as_fit_does(kind, tmp_path):
    import pandas as pd

    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        rng.normal(8, 1, (20, 6)).astype(np.float32),
        index=[f"s{i}" for i in range(20)],
        columns=["TP53", "ESR1", "MYC", "PTEN", "KRAS", "EGFR"],
    )
    X = df
    if kind == "path":
        X = str(tmp_path / "expr.csv")
        df.to_csv(X)
    opts = dict(epochs=1, batch_size=8, method_params={"hidden_dims": [4]}, progress=False)
    fitted = SSLModel("scarf", **opts).fit(X).data_sources_
    m = SSLModel("scarf", **opts)
    m.fit_transform(X)
    assert m.data_sources_ == fitted
    assert fitted[0]["name"] == (X if kind == "path" else "in-memory DataFrame")


def test_the_card_carries_the_hub_keys_and_round_trips_through_model_card(saved, tmp_path):
    hf = pytest.importorskip("huggingface_hub")
    card = hf.ModelCard.load(saved / CARD_FILE)
    assert card.data.library_name == "exprssl" and card.data.license == "unknown"
    assert card.data.pipeline_tag == "feature-extraction" and "scarf" in card.data.tags
    assert card.data.to_dict().get("datasets") is None  # none given: none claimed
    d = shutil.copytree(saved, tmp_path / "resaved")
    card.save(d / CARD_FILE)  # the Hub's own writer: exprssl still reads and verifies it
    assert verify(d) == read_card(saved)
    m = SSLModel.load(d)
    m.save(tmp_path / "licensed", license="cc-by-4.0", datasets=["org/cohort"])
    data = hf.ModelCard.load(tmp_path / "licensed" / CARD_FILE).data
    assert (data.license, data.datasets, data.library_name) == (
        "cc-by-4.0",
        ["org/cohort"],
        "exprssl",
    )


def test_card_is_read_without_huggingface_hub_as_with_it(saved, monkeypatch):
    with_hub = read_card(saved)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    assert read_card(saved) == with_hub


@pytest.mark.parametrize("hub", [True, False])
def test_unreadable_card_metadata_is_one_line(saved, tmp_path, monkeypatch, hub):
    if not hub:
        monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    d = shutil.copytree(saved, tmp_path / "m")
    (d / CARD_FILE).write_text("---\nlibrary_name: [exprssl\n---\n# text\n")
    with pytest.raises(DataFileError) as e:
        read_card(d)
    assert _one_line(e).startswith(f"{d / CARD_FILE}: unreadable card metadata (")
    (d / CARD_FILE).write_text("---\n- a list\n---\n")  # YAML, but not a mapping
    with pytest.raises(DataFileError) as e:
        read_card(d)
    assert _one_line(e).startswith(f"{d / CARD_FILE}: ")
