"""SSLModel and Preprocessor as scikit-learn estimators: the estimator checks, Pipeline and
GridSearchCV on numpy arrays, pandas DataFrames and AnnData alike."""

from __future__ import annotations

import dataclasses
import inspect
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import sklearn.exceptions
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from exprssl import Preprocessor, SSLModel
from exprssl.errors import ExprsslError, NotFittedError
from exprssl.training import TrainConfig

TINY = dict(
    epochs=1,
    batch_size=16,
    method_params={"hidden_dims": [4]},
    progress=False,
    val_fraction=0.0,
    patience=0,
)

# Checks that cannot pass, by name, each with why. exprssl's input errors are ValueError
# (non-numbers TypeError) like scikit-learn's, but its messages are its own one-line ones (they
# name the file, sample and gene), and these checks match scikit-learn's message text.
OWN_MESSAGE = (
    "exprssl raises a ValueError with its own one-line message, not scikit-learn's wording"
)
EXPECTED_FAILURES = {
    "check_fit2d_1sample": "fitting needs >= 2 samples (BatchNorm, gene variances); " + OWN_MESSAGE,
    "check_fit2d_predict1d": "1-D input at transform: " + OWN_MESSAGE,
    "check_estimators_empty_data_messages": "0 samples or 0 genes: " + OWN_MESSAGE,
    "check_dtype_object": "non-numbers: exprssl raises NonNumericError (a TypeError) with its own "
    "message",
    "check_complex_data": "complex input is refused (InvalidValuesError, a ValueError) with its "
    "own message",
}
SSL_EXPECTED_FAILURES = {
    **EXPECTED_FAILURES,
    "check_do_not_raise_errors_in_init_or_set_params": "SSLModel's **misplaced exists only to "
    "turn method options passed as keywords (the API before method_params) into a ConfigError "
    "that says where they go; the check passes it a value. Real parameters are never checked in "
    "__init__ (test_init_stores_params_unchecked)",
}


def _expected_failures(estimator) -> dict[str, str]:
    return SSL_EXPECTED_FAILURES if isinstance(estimator, SSLModel) else EXPECTED_FAILURES


@pytest.fixture(autouse=True)
def _quiet_warnings(caplog):
    caplog.set_level(logging.ERROR, logger="exprssl")  # the checks' random data trip scale warnings


@pytest.mark.filterwarnings(
    "ignore::numpy.exceptions.ComplexWarning"
)  # check_complex_data, expected to fail
@parametrize_with_checks(
    [Preprocessor(), SSLModel("scarf", **TINY)],
    expected_failed_checks=_expected_failures,
    xfail_strict=True,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------------- data
def _classes(n=48, genes=12, seed=0):
    """Two classes shifted in half of the genes: any reasonable embedding separates them."""
    rng = np.random.default_rng(seed)
    y = np.repeat(["a", "b"], n // 2)
    X = rng.normal(size=(n, genes)) + 6
    X[y == "b", : genes // 2] += 3
    return X.astype(np.float32), y


def _as(kind: str, X: np.ndarray, y: np.ndarray):
    samples = [f"S{i}" for i in range(len(X))]
    genes = [f"G{j}" for j in range(X.shape[1])]
    if kind == "numpy":
        return X, y
    if kind == "pandas":
        return pd.DataFrame(X, index=samples, columns=genes), pd.Series(y, index=samples)
    adata = ad.AnnData(
        X, obs=pd.DataFrame({"label": y}, index=samples), var=pd.DataFrame(index=genes)
    )
    return adata, adata.obs["label"]


KINDS = ["numpy", "pandas", "anndata"]


@pytest.mark.parametrize("kind", KINDS)
def test_pipeline_fit_predict(kind):
    X, y = _as(kind, *_classes())
    pipe = Pipeline(
        [("ssl", SSLModel("scarf", **{**TINY, "epochs": 2})), ("lr", LogisticRegression())]
    )
    pipe.fit(X, y)  # the Pipeline passes y to SSLModel.fit_transform: ignored, never an obsm key
    assert pipe.predict(X).shape == (48,) and pipe.score(X, y) > 0.5
    if kind == "anndata":
        assert len(X.obsm) == 0
    ssl = pipe.named_steps["ssl"]
    assert ssl.n_features_in_ == 12 and ssl.embedding_dim_ == 4
    assert hasattr(ssl, "feature_names_in_") == (kind != "numpy")
    assert list(ssl.get_feature_names_out()) == ["scarf0", "scarf1", "scarf2", "scarf3"]


@pytest.mark.parametrize("kind", KINDS)
def test_grid_search_over_ssl_options(kind):
    X, y = _as(kind, *_classes())
    pipe = Pipeline(
        [("prep", Preprocessor()), ("ssl", SSLModel("scarf", **TINY)), ("lr", LogisticRegression())]
    )
    search = GridSearchCV(pipe, {"ssl__epochs": [1, 2]}, cv=2, error_score="raise").fit(X, y)
    assert search.best_params_["ssl__epochs"] in (1, 2)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.predict(X).shape == (48,)


# --------------------------------------------------------------------- the estimator API
def test_train_options_mirror_train_config():
    """Every TrainConfig field is an SSLModel parameter with the same default."""
    params = inspect.signature(SSLModel).parameters
    for field in dataclasses.fields(TrainConfig):
        default = (
            field.default if field.default is not dataclasses.MISSING else field.default_factory()
        )
        assert params[field.name].default == default, field.name
    own = {"method", "method_params", "preprocessor", "misplaced"}
    assert set(params) - own == {f.name for f in dataclasses.fields(TrainConfig)}


def test_init_stores_params_unchecked():
    """No validation in __init__ (scikit-learn: set_params would bypass it); fit and
    check_params do it."""
    junk = {name: "helloworld" for name in SSLModel._get_param_names()}
    model = SSLModel(**junk)
    assert model.get_params() == junk
    model.set_params(**junk)
    assert (
        Preprocessor(**{name: -1 for name in Preprocessor._get_param_names()}).get_params()["clip"]
        == -1
    )


def test_get_set_params_and_clone():
    prep = Preprocessor(top_k_variance=5)
    model = SSLModel("vime", method_params={"corruption_rate": 0.5}, preprocessor=prep, epochs=3)
    params = model.get_params()
    assert params["method"] == "vime" and params["epochs"] == 3 and params["preprocessor"] is prep
    assert params["preprocessor__top_k_variance"] == 5  # nested, for GridSearchCV
    model.set_params(epochs=7, preprocessor__top_k_variance=9)
    assert model.epochs == 7 and prep.top_k_variance == 9
    twin = clone(model)
    assert (
        twin.get_params()["method_params"] == {"corruption_rate": 0.5}
        and twin.preprocessor is not prep
    )
    with pytest.raises(ValueError, match="Invalid parameter 'corruption_rate'"):
        model.set_params(corruption_rate=0.2)


def test_not_fitted_is_scikit_learns_and_one_line():
    for estimator, call in (
        (SSLModel(), lambda m: m.transform(np.ones((3, 2)))),
        (Preprocessor(), lambda p: p.transform(np.ones((3, 2)))),
        (SSLModel(), lambda m: m.save("never_written")),
    ):
        with pytest.raises(NotFittedError) as e:
            call(estimator)
        assert isinstance(e.value, sklearn.exceptions.NotFittedError) and isinstance(
            e.value, ExprsslError
        )
        assert "not fitted yet" in str(e.value) and "\n" not in str(e.value)
