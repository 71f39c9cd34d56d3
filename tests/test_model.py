"""SSLModel: seeded determinism, save/load, gene alignment by name, and that pretraining learns."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from exprssl import Preprocessor, SSLModel
from exprssl.errors import (
    ConfigError,
    DataFileError,
    ExprsslError,
    GeneOverlapError,
    ModelNotFoundError,
    NonNumericError,
    NotFittedError,
    OutputPathError,
    TrainingDivergedError,
)
from exprssl.methods import available
from exprssl.training import effective_rank, embedding_std


def module_data(n=600, n_genes=300, n_classes=4, n_modules=12, module_size=15, noise=1.5, seed=0):
    """Classes live in co-expressed gene modules under strong independent per-gene noise.

    Each gene alone is a weak class marker (per-gene SNR < 1) but whole modules are strong ones,
    so an encoder that learns the modules (what corruption-based SSL rewards: redundant structure
    survives masking) beats random features, especially with few labels.
    """
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n // n_classes)
    rng.shuffle(y)
    centers = rng.normal(0, 1.0, (n_classes, n_modules))
    activity = centers[y] + rng.normal(0, 0.5, (n, n_modules))  # module activity per sample
    X = rng.normal(0, noise, (n, n_genes))
    for m in range(n_modules):
        genes = np.arange(m * module_size, (m + 1) * module_size)
        X[:, genes] += activity[:, [m]]
    X = (X + 8).astype(np.float32)  # log-scale-like values
    a = ad.AnnData(X)
    a.obs_names = [f"s{i}" for i in range(n)]
    a.var_names = [f"G{i}" for i in range(n_genes)]
    a.obs["label"] = [f"c{k}" for k in y]
    return a


FAST = dict(epochs=3, batch_size=64, method_params={"hidden_dims": [64, 64]}, progress=False)
TINY = dict(
    epochs=1, batch_size=16, method_params={"hidden_dims": [8]}, progress=False, val_fraction=0.0
)


@pytest.fixture(scope="module")
def data():
    return module_data()


def test_seeded_training_is_deterministic(data):
    z1 = SSLModel("scarf", seed=3, **FAST).fit(data).transform(data)
    z2 = SSLModel("scarf", seed=3, **FAST).fit(data).transform(data)
    z3 = SSLModel("scarf", seed=4, **FAST).fit(data).transform(data)
    np.testing.assert_array_equal(z1, z2)
    assert not np.allclose(z1, z3)


@pytest.mark.parametrize("method", ["scarf", "byol"])
def test_save_load_roundtrip_identical_embeddings(tmp_path, data, method):
    m = SSLModel(method, **FAST).fit(data)
    z = m.transform(data)
    m.save(tmp_path / "model")
    m2 = SSLModel.load(tmp_path / "model")
    np.testing.assert_array_equal(z, m2.transform(data))
    assert (
        m2.genes_ == m.genes_ and m2.method == method and m2.model_dir_ == str(tmp_path / "model")
    )
    assert len(m2.history_) == len(m.history_) > 0
    assert m2.get_params()["method_params"] == m.method_params_ == m2.method_params_
    # saving again over an existing model needs overwrite, replaces it whole, leaves no temp dirs
    with pytest.raises(OutputPathError, match="already exists there; pass --overwrite"):
        m2.save(tmp_path / "model")
    m2.save(tmp_path / "model", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_bf16_mixed_precision_on_cpu(data):
    """--precision bf16-mixed (autocast; ~1.7x faster steps on AVX512-BF16 CPUs) keeps fp32
    weights and fp32 embeddings close to the fp32-trained model's."""
    ref = SSLModel("scarf", seed=1, **FAST).fit(data)
    m = SSLModel("scarf", seed=1, precision="bf16-mixed", **FAST).fit(data)
    assert all(p.dtype == torch.float32 for p in m.method_.parameters())
    z, z_ref = m.transform(data), ref.transform(data)
    assert z.dtype == np.float32 and np.isfinite(z).all()
    assert np.corrcoef(z.ravel(), z_ref.ravel())[0, 1] > 0.9
    assert not np.array_equal(z, z_ref)  # bf16 really ran


def test_transform_aligns_genes_by_name(data):
    m = SSLModel("vime", **FAST).fit(data)
    z = m.transform(data)
    perm = np.random.default_rng(0).permutation(data.n_vars)
    shuffled = data[:, perm].copy()
    np.testing.assert_allclose(m.transform(shuffled), z, rtol=1e-5, atol=1e-5)
    m.transform(shuffled, key="X_vime")
    assert shuffled.obsm["X_vime"].shape == (data.n_obs, 64)


def test_fit_and_transform_take_a_path_or_dataset_name(tmp_path, data):
    from exprssl.io import write_h5ad

    path = tmp_path / "d.h5ad"
    write_h5ad(data, path)
    m = SSLModel("scarf", seed=0, **FAST).fit(str(path))
    np.testing.assert_array_equal(m.transform(path), m.transform(data))
    assert m.genes_ == list(data.var_names)
    with pytest.raises(Exception, match="neither an existing file nor a bundled dataset"):
        m.transform("no_such_data")
    assert SSLModel("vime", **FAST).fit("all_leukemia").transform("all_leukemia").shape == (128, 64)


def test_transform_without_model_genes_fails(data):
    m = SSLModel("mae", **FAST).fit(data)
    other = data.copy()
    other.var_names = [f"X{i}" for i in range(other.n_vars)]
    with pytest.raises(GeneOverlapError):
        m.transform(other)


def test_bad_options_fail_before_training():
    small = module_data(n=8)
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        SSLModel("nope").fit(small)
    with pytest.raises(ConfigError, match="temprature"):
        SSLModel("scarf", method_params={"temprature": 0.1}).fit(small)
    with pytest.raises(ConfigError, match="batch_size"):
        SSLModel("scarf", batch_size=1).fit(small)
    with pytest.raises(ModelNotFoundError):
        SSLModel.load("/nonexistent/model")
    with pytest.raises(NotFittedError, match="not fitted"):
        SSLModel("scarf").transform(small)


def test_collapse_monitors():
    torch.manual_seed(0)
    spread = torch.randn(500, 16)
    one_point = torch.randn(1, 16).expand(500, 16) + 1e-6 * torch.randn(500, 16)
    one_line = torch.randn(500, 1) @ torch.randn(1, 16)
    assert effective_rank(spread) > 14
    assert effective_rank(one_point) < 1.01
    assert effective_rank(one_line) < 1.01
    assert embedding_std(spread) == pytest.approx(1 / 4, rel=0.1)
    assert embedding_std(one_point) < 1e-5


def test_history_records_epochs(data):
    m = SSLModel(
        "barlow",
        epochs=4,
        batch_size=64,
        method_params={"hidden_dims": [32]},
        patience=0,
        progress=False,
    ).fit(data)
    h = m.history_
    assert list(h["epoch"]) == [1, 2, 3, 4]
    assert h[["train_loss", "val_loss", "emb_std", "eff_rank"]].notna().all().all()
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]


def _probe_accuracy(Z, y, train_idx, test_idx):
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(Z[train_idx], y[train_idx])
    return clf.score(Z[test_idx], y[test_idx])


@pytest.mark.parametrize("method", available())
def test_pretraining_beats_random_encoder(method):
    """A short pretraining learns structure a random-init encoder of the same shape lacks."""
    data = module_data(seed=1)
    y = data.obs["label"].to_numpy()
    rng = np.random.default_rng(0)
    # few labels: 5 per class; the rest is the test set
    train_idx = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in np.unique(y)]
    )
    test_idx = np.setdiff1d(np.arange(len(y)), train_idx)
    opts = dict(
        epochs=30,
        batch_size=128,
        method_params={"hidden_dims": [128, 128]},
        seed=0,
        progress=False,
        patience=0,
    )
    trained = SSLModel(method, **opts).fit(data)
    random_init = SSLModel(method, **dict(opts, epochs=1, lr=1e-12)).fit(data)
    acc_trained = _probe_accuracy(trained.transform(data), y, train_idx, test_idx)
    acc_random = _probe_accuracy(random_init.transform(data), y, train_idx, test_idx)
    assert acc_trained >= acc_random + 0.10, (method, acc_trained, acc_random)


# ------------------------------------------------------------------ options, inputs, outputs
@pytest.fixture(scope="module")
def small():
    return module_data(n=60, n_genes=30, n_modules=2, seed=2)


@pytest.fixture(scope="module")
def tiny_model(small):
    return SSLModel("scarf", **TINY).fit(small)


def _one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert isinstance(e.value, ExprsslError) and text and "\n" not in text
    return text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(epochs="abc"), "epochs must be an integer >= 1, got 'abc'"),
        (
            dict(preprocessor={"foo": 1}),
            "unknown preprocessing option(s): foo; accepted: library_size, ",
        ),
        (
            dict(preprocessor=5),
            "preprocessor must be an exprssl.Preprocessor, a dict of its options",
        ),
        (dict(method_params={"temperature": 0}), "temperature must be a finite number > 0, got 0"),
        (
            dict(method_params=[1, 2]),
            "method_params must be a dict of the options of method 'scarf'",
        ),
        (dict(method="nope"), "unknown method 'nope'"),
    ],
)
def test_check_params_and_fit_give_the_same_one_line_error(small, params, message):
    model = SSLModel(**params)  # stored as given: scikit-learn estimators never check in __init__
    with pytest.raises(ConfigError) as from_check:
        model.check_params()
    with pytest.raises(ConfigError) as from_fit:
        model.fit(small)
    assert message in _one_line(from_check) and _one_line(from_fit) == str(from_check.value)
    assert not hasattr(model, "method_")


def test_check_params_resolves_without_fitting():
    prep = Preprocessor(top_k_variance=5)
    method_params, train, preprocessor = SSLModel(
        "vime", epochs=3, lr="1e-3", preprocessor=prep, method_params={"corruption_rate": 0.5}
    ).check_params()
    assert method_params["corruption_rate"] == 0.5 and "hidden_dims" in method_params
    assert train.epochs == 3 and train.lr == pytest.approx(1e-3)
    assert preprocessor is not prep and preprocessor.top_k_variance == 5


def test_method_options_as_keywords_point_to_method_params():
    with pytest.raises(ConfigError) as e:
        SSLModel("scarf", epochs=50, corruption_rate=0.5)
    text = _one_line(e)
    assert "unknown keyword(s) corruption_rate" in text
    assert "method_params={'corruption_rate': 0.5}" in text and "epochs" in text


def test_fit_leaves_the_callers_objects_alone(small):
    method_params = {"hidden_dims": [8]}
    prep = Preprocessor(top_k_variance=10)
    m = SSLModel("scarf", **{**TINY, "method_params": method_params}, preprocessor=prep).fit(small)
    assert method_params == {"hidden_dims": [8]} and m.method_params is method_params
    assert not hasattr(prep, "genes_") and m.preprocessor is prep and m.preprocessor_ is not prep
    assert len(m.genes_) == 10 and m.n_features_in_ == 30 and m.embedding_dim_ == 8
    # a fitted preprocessor is used as it is (the benchmark shares one), and not modified
    fitted = Preprocessor().fit(small[:30])
    state = fitted.to_dict()
    m2 = SSLModel("scarf", preprocessor=fitted, **TINY).fit(small[30:])
    assert (
        fitted.to_dict() == state == m2.preprocessor_.to_dict() and m2.preprocessor_ is not fitted
    )


def test_fit_on_non_numeric_or_unknown_input_is_one_line():
    import pandas as pd

    with pytest.raises(NonNumericError) as e:
        SSLModel(**TINY).fit(np.array([["a", "b"], ["c", "d"], ["e", "f"]]))
    assert "values are not numbers" in _one_line(e)
    frame = pd.DataFrame({"G1": [1.0, 2.0, 3.0], "G2": ["x", "y", "z"]})
    with pytest.raises(NonNumericError) as e:
        SSLModel(**TINY).fit(frame)
    assert _one_line(e).startswith("DataFrame: ")
    with pytest.raises(DataFileError) as e:
        SSLModel(**TINY).fit("abc")
    assert "neither an existing file nor a bundled dataset" in _one_line(e)


def test_missing_model_genes_warn_with_the_coverage(tiny_model, small, caplog):
    partial = small[:, 6:].copy()  # 24 of 30 genes
    with caplog.at_level("WARNING", logger="exprssl"):
        Z = tiny_model.transform(partial)
    assert Z.shape == (60, 8)
    [record] = [r for r in caplog.records if "genes found" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert (
        "24 of the model's 30 genes found (80.0%); 6 missing (G0, G1, G2, G3, G4, ...)"
        in record.getMessage()
    )
    with pytest.raises(GeneOverlapError) as e:
        tiny_model.transform(small[:, 20:].copy())
    assert "only 10 of the model's 30 genes found (33.3%)" in _one_line(e)


def test_transform_returns_anndata_like_exprssl_embed(tmp_path, tiny_model, small):
    import pandas as pd

    from exprssl.io import write_h5ad

    Z = tiny_model.transform(small)
    out = tiny_model.transform(small, return_anndata=True)
    assert out.n_obs == 60 and out.n_vars == 0 and "X_scarf" not in small.obsm
    np.testing.assert_array_equal(out.obsm["X_scarf"], Z)
    assert list(out.obs["label"]) == list(small.obs["label"]) and list(out.obs_names) == list(
        small.obs_names
    )
    alignment = out.uns["exprssl"].pop("gene_alignment")
    assert dict(out.uns["exprssl"]) == {
        "model": "(not saved)",
        "method": "scarf",
        "source": "AnnData",
        "n_model_genes": 30,
    }
    assert alignment["summary"].startswith("30 of 30 reference genes present (100.0%: 30 by name")
    assert len(alignment["reference"]) == len(alignment["status"]) == 0  # every gene by name
    frame = pd.DataFrame(np.asarray(small.X), index=small.obs_names, columns=small.var_names)
    from_frame = tiny_model.transform(frame, key="emb", return_anndata=True)
    np.testing.assert_array_equal(from_frame.obsm["emb"], Z)
    assert (
        list(from_frame.obs_names) == list(small.obs_names)
        and from_frame.uns["exprssl"]["source"] == "DataFrame"
    )
    with pytest.raises(ConfigError, match="key='emb' stores the embeddings in an AnnData's obsm"):
        tiny_model.transform(np.asarray(small.X), key="emb")
    # a streamed h5ad: obs from the file, the file's path as the source, the saved model's path
    path = tmp_path / "d.h5ad"
    write_h5ad(small, path)
    tiny_model.save(tmp_path / "model")
    streamed = tiny_model.transform(path, stream=True, return_anndata=True)
    np.testing.assert_allclose(streamed.obsm["X_scarf"], Z, rtol=1e-5, atol=1e-6)
    assert list(streamed.obs["label"]) == list(small.obs["label"])
    assert streamed.uns["exprssl"]["source"] == str(path)
    assert streamed.uns["exprssl"]["model"] == str(tmp_path / "model")


# ----------------------------------------------------------------------------- saving
def test_save_never_replaces_what_exprssl_did_not_write(tmp_path, tiny_model):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "data.csv").write_text("sample,G0\nS0,1\n")
    (folder / "notes.txt").write_text("x\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("precious\n")
    for target, holds in ((folder, "a directory"), (notes, "a file")):
        with pytest.raises(OutputPathError) as e:
            tiny_model.save(target)
        assert f"exists and is {holds}, not an exprssl model directory" in _one_line(e)
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "x\n" and notes.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "p"]  # no temp or lock files
    (tmp_path / "empty").mkdir()
    tiny_model.save(tmp_path / "empty")  # an empty directory holds nothing to lose
    assert SSLModel.load(tmp_path / "empty").genes_ == tiny_model.genes_


def test_save_refuses_non_finite_weights(tmp_path, tiny_model):
    import copy

    broken = copy.deepcopy(tiny_model)
    with torch.no_grad():
        next(broken.method_.parameters())[0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError) as e:
        broken.save(tmp_path / "model")
    assert "not finite" in _one_line(e) and not (tmp_path / "model").exists()


def test_concurrent_saves_never_race(tmp_path, tiny_model):
    from concurrent.futures import ThreadPoolExecutor

    from exprssl.outputs import output_lock

    target = tmp_path / "model"
    with output_lock(target), pytest.raises(OutputPathError) as e:
        tiny_model.save(target)
    assert "another exprssl process is writing it" in _one_line(e) and not target.exists()

    def save(_):
        try:
            tiny_model.save(target, overwrite=True)
            return "saved"
        except OutputPathError as err:
            assert "another exprssl process is writing it" in str(err)
            return "busy"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(save, range(8)))
    assert "saved" in outcomes and set(outcomes) <= {"saved", "busy"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    np.testing.assert_array_equal(
        SSLModel.load(target).embed_preprocessed(np.zeros((2, 30))),
        tiny_model.embed_preprocessed(np.zeros((2, 30))),
    )


# ---------------------------------------------------------------------------- loading
def _truncate(d):
    w = d / "weights.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])


def _edit_config(**changes):
    def edit(d):
        import json

        cfg = json.loads((d / "config.json").read_text())
        for k, v in changes.items():
            if v is None:
                cfg.pop(k)
            else:
                cfg[k] = v
        (d / "config.json").write_text(json.dumps(cfg))

    return edit


def _other_preprocessor(d):
    rng = np.random.default_rng(0)
    Preprocessor().fit(rng.normal(size=(10, 20)) + 5).save(d / "preprocessor.json")


@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        (_truncate, "weights.safetensors", "not readable model weights"),
        (
            lambda d: (d / "weights.safetensors").write_bytes(np.random.default_rng(0).bytes(5000)),
            "weights.safetensors",
            "not readable model weights",
        ),
        (lambda d: (d / "config.json").write_text("{not json"), "config.json", "not valid JSON"),
        (
            lambda d: (d / "config.json").write_text("[1, 2]"),
            "config.json",
            "expected a JSON object",
        ),
        (
            _edit_config(n_features=None),
            "config.json",
            "'n_features' (the number of genes the encoder takes) must be",
        ),
        (_edit_config(n_features="abc"), "config.json", "must be a positive integer, got 'abc'"),
        (
            _edit_config(n_features=7),
            "weights.safetensors",
            "does not match config.json (method 'scarf', n_features 7)",
        ),
        (_edit_config(method="nope"), "config.json", "unknown method 'nope'"),
        (_edit_config(method_config=[1]), "config.json", "'method_config' must be a JSON object"),
        (
            _edit_config(method_config={"hidden_dims": [16]}),
            "weights.safetensors",
            "does not match config.json",
        ),
        (
            _other_preprocessor,
            "preprocessor.json",
            "20 genes, but config.json and weights.safetensors are for 30",
        ),
        (
            lambda d: (d / "preprocessor.json").write_text("{}"),
            "preprocessor.json",
            "not a valid preprocessor file",
        ),
        (lambda d: (d / "weights.safetensors").unlink(), "", "missing weights.safetensors"),
    ],
)
def test_damaged_model_directories_are_one_line(tmp_path, tiny_model, damage, file, message):
    d = tiny_model.save(tmp_path / "model")
    damage(d)
    (d / "README.md").unlink()  # the readers' own checks: the card's hashes would refuse first
    with pytest.raises(ExprsslError) as e:
        SSLModel.load(d)
    text = _one_line(e)
    assert text.startswith(str(d / file)) and message in text


LEGACY = Path(__file__).parent / "data" / "model_0_3"  # saved by exprssl 0.3 (weights.pt)


def test_a_malicious_weights_file_does_not_run(tmp_path):
    """A 0.3 model directory (torch pickle weights) with a crafted pickle: refused by
    weights_only=True, naming the file, without running it (safetensors, 0.4's format, holds
    tensors only)."""
    import os
    import shutil

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    d = Path(shutil.copytree(LEGACY, tmp_path / "model"))
    torch.save({"x": Evil()}, d / "weights.pt")
    for card in (True, False):  # the card's hash refuses first; without it, the reader does
        if not card:
            (d / "README.md").unlink()
        with pytest.raises(DataFileError) as e:
            SSLModel.load(d)
        assert _one_line(e).startswith(str(d / "weights.pt")) and not marker.exists()


def test_a_0_3_model_loads_and_is_saved_as_safetensors(tmp_path):
    """0.3 saved weights.pt (format 1); it still loads, verified against its card, and embeds as
    it did under 0.3; saved again it is format 2, weights.safetensors, with the same
    embeddings."""
    import json

    import anndata as ad

    data = ad.read_h5ad(LEGACY.parent / "model_0_3_input.h5ad")
    old = SSLModel.load(LEGACY)
    expected = np.load(LEGACY.parent / "model_0_3_embedding.npy")
    np.testing.assert_allclose(old.transform(data), expected, atol=1e-6)
    new = old.save(tmp_path / "again")
    files = sorted(p.name for p in new.iterdir())
    assert "weights.safetensors" in files and "weights.pt" not in files
    assert json.loads((new / "config.json").read_text())["format_version"] == 2
    np.testing.assert_allclose(SSLModel.load(new).transform(data), expected, atol=1e-6)


def test_an_obsm_key_passed_where_y_goes_is_refused(small):
    with pytest.raises(ConfigError) as e:
        SSLModel(**TINY).fit_transform(small, "X_scarf")
    assert "pass the obsm key as key='X_scarf'" in _one_line(e)
    Z = SSLModel(**TINY).fit_transform(small, small.obs["label"], key="X_scarf")
    np.testing.assert_array_equal(small.obsm.pop("X_scarf"), Z)


def test_fit_and_load_agree_on_the_input_with_a_prefitted_preprocessor(tmp_path, small):
    """A Preprocessor fit on 20 genes, the model fit on a wider table (25 named columns): the
    input's width and names are what fit saw, and a save/load round trip keeps them."""
    import pandas as pd

    genes = [f"g{i}" for i in range(25)]
    wide = pd.DataFrame(np.asarray(small.X)[:, :25], columns=genes)
    prep = Preprocessor().fit(wide.iloc[:, :20])
    model = SSLModel("scarf", preprocessor=prep, **TINY).fit(wide)
    assert model.n_features_in_ == 25 and list(model.feature_names_in_) == genes
    loaded = SSLModel.load(model.save(tmp_path / "m"))
    assert loaded.n_features_in_ == model.n_features_in_ == 25
    assert list(loaded.feature_names_in_) == genes and loaded.genes_ == model.genes_ == genes[:20]
    np.testing.assert_allclose(loaded.transform(wide), model.transform(wide), atol=1e-6)
