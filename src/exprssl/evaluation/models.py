"""Pretrained encoders given to the benchmark (``models=[...]``, ``--model``): each one is read,
checked against its card and the cohort's genes before any work, and becomes approaches (its
frozen probe and fine-tuning) beside the per-split SSL methods, with its own preprocessing and
gene list. Pretrain once on a big pool, evaluate on many cohorts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, GeneOverlapError
from ..model_layout import ModelLayout
from .schema import FeatureKey, Features, Layout, ModelInfo

if TYPE_CHECKING:
    from ..model import SSLModel
    from .cohort import Cohort
    from .config import BenchmarkConfig


@dataclass
class PretrainedModel:
    """A given encoder: its approach name, where it came from, its local directory, what its
    card says about its pretraining and how well its genes cover the cohort."""

    name: str
    given: str  # the path or hub id as the user gave it
    directory: str  # local directory (a hub id's cached snapshot)
    weights_sha256: str
    coverage: float
    alignment: str  # match_genes' one-line summary
    card: dict[str, Any] = field(default_factory=dict)
    scaling: str = "standardize"  # pool_scaling: the cohort z-scored per split (else the model's)

    @property
    def method(self) -> str | None:
        """The SSL method it was pretrained with (its card's)."""
        return (self.card or {}).get("method")

    def describe(self) -> ModelInfo:
        """What the manifest and the report say about the model."""
        c = self.card or {}
        train = c.get("train_options") or {}
        return ModelInfo(
            given=self.given,
            directory=self.directory,
            weights_sha256=self.weights_sha256,
            gene_coverage=round(self.coverage, 4),
            input_scaling=(
                "the model's count/log steps, then each gene z-scored by the cohort's split pool"
                if self.scaling == "standardize"
                else "the model's own preprocessing statistics (from its pretraining data)"
            ),
            alignment=self.alignment,
            method=self.method,
            method_options=c.get("method_options") or {},
            data_sources=[
                {k: s.get(k) for k in ("name", "n_profiles", "n_genes", "sha256")}
                for s in c.get("data_sources") or []
            ],
            genes={k: v for k, v in (c.get("genes") or {}).items() if k != "first"},
            preprocessing=c.get("preprocessing") or {},
            epochs_trained=(c.get("training") or {}).get("epochs"),
            max_epochs=train.get("epochs"),
            exprssl_version=(c.get("versions") or {}).get("exprssl"),
        )


def model_name(given: str) -> str:
    """The approach name of a model: a hub id's repo name (``hf://org/name@rev`` -> ``name``), or
    a directory's name."""
    from ..hub import is_hub_id, local_model_path, parse_hub_id

    if is_hub_id(given):
        return parse_hub_id(given)[0].split("/")[1]
    return local_model_path(given).resolve().name


def check_model_names(cfg: BenchmarkConfig) -> list[str]:
    """Each model's approach name, refused (one line) when two models or a model and an SSL
    method or baseline would share a name: results would be ambiguous."""
    from ..methods import available as available_methods
    from .baselines import available as available_baselines

    names = [model_name(m) for m in cfg.models]
    taken = set(available_methods()) | set(available_baselines())
    for given, name in zip(cfg.models, names, strict=True):
        if name in taken:
            raise ConfigError(
                f"model {given}: its name '{name}' is also an SSL method's or a baseline's; "
                "copy the model to a directory of another name"
            )
        if names.count(name) > 1:
            raise ConfigError(
                f"models: two models are named '{name}' (from their directory or hub id); "
                "give them directories of different names"
            )
    return names


def load_models(cfg: BenchmarkConfig, cohort: Cohort) -> list[PretrainedModel]:
    """Every given model: resolved (a hub id through the local cache), verified against its card,
    its genes matched to the cohort's; a coverage below ``min_model_coverage`` is refused with
    one line, before any work."""
    from ..card import file_sha256
    from ..genes import match_genes
    from ..model import SSLModel

    out = []
    for given, name in zip(cfg.models, check_model_names(cfg), strict=True):
        model = SSLModel.load(given)
        match = match_genes(list(cohort.adata.var_names), list(model.preprocessor_.genes_))
        if match.coverage < cfg.min_model_coverage:
            raise GeneOverlapError(
                f"model {given}: only {100 * match.coverage:.1f}% of its "
                f"{match.n_reference} genes found in {cfg.data} (min_model_coverage "
                f"{100 * cfg.min_model_coverage:.0f}%); missing e.g. "
                f"{', '.join(match.missing[:5])}"
            )
        card = getattr(model, "card_", None) or {}
        directory = str(Path(model.model_dir_).absolute())  # read by workers on a cluster too
        weights_file = ModelLayout(directory).weights
        weights = (card.get("files_sha256") or {}).get(weights_file.name) or file_sha256(
            weights_file
        )
        out.append(
            PretrainedModel(
                name,
                str(given),
                directory,
                weights,
                match.coverage,
                match.summary(),
                card,
                cfg.pool_scaling,
            )
        )
    return out


def unscaled_inputs(cohort: Cohort, model: SSLModel) -> np.ndarray:
    """Every cohort profile through the model's own count and log steps only (genes aligned by
    name, missing ones imputed), not z-scored: what ``model_inputs`` scales per split pool."""
    from ..preprocessing import Preprocessor

    state = model.preprocessor_.to_dict()
    unscaled = {**state["params"], "standardize": False, "clip": None}
    return Preprocessor.from_dict({**state, "params": unscaled}).transform(
        np.asarray(cohort.adata.X, dtype=np.float32),
        list(cohort.adata.var_names),
        report_coverage=False,
    )


def model_inputs(
    cohort: Cohort,
    model: SSLModel,
    pool_rows: np.ndarray | None = None,
    unscaled: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every cohort profile through the model's own preprocessor (genes aligned by name, missing
    ones imputed with the model's training mean), and its embedding: (inputs, embeddings).

    With ``pool_rows`` (``pool_scaling: standardize``, the default) the model's own count and
    log steps are kept, but each gene is z-scored by the cohort's statistics on those rows (a
    split's pool, never its test profiles), as every pretraining source was scaled on its own:
    a cohort of another platform or tissue meets the encoder on the scale it was trained on.
    Without, the model's statistics from its pretraining data are used as they are.
    ``unscaled``: ``unscaled_inputs(cohort, model)``, computed once for every split (here when
    not given)."""
    prep = model.preprocessor_
    if pool_rows is None:
        X_raw = np.asarray(cohort.adata.X, dtype=np.float32)
        X = prep.transform(X_raw, list(cohort.adata.var_names), report_coverage=False)
    else:
        X = unscaled if unscaled is not None else unscaled_inputs(cohort, model)
        mean, sd = X[pool_rows].mean(0), X[pool_rows].std(0)
        sd[sd < 1e-8] = 1.0  # genes the cohort lacks (imputed: constant) become 0
        X = (X - mean) / sd
        clip = prep.options_.get("clip")
        if clip is not None:
            np.clip(X, -clip, clip, out=X)
        X = np.ascontiguousarray(X, dtype=np.float32)
    return X, model.embed_preprocessed(X)


def write_model_features(
    cohort: Cohort,
    models: list[PretrainedModel],
    out: Path,
    features: dict[int, Features],
    splits: list,
    pool_scaling: str,
) -> None:
    """Each model's inputs (``X:<name>``, what fine-tuning reads) and embeddings (``Z:<name>``,
    what the probe reads) per split (once for every split when the model's own statistics are
    used); the first split's test embeddings and the model's pretraining history go to the
    report's plots."""
    from ..model import SSLModel
    from ..utils import atomic_save, atomic_savez, atomic_write_text

    per_split = pool_scaling == "standardize"
    test0 = splits[0].test
    labels = cohort.classes[cohort.y[test0]].astype(str)
    for m in models:
        model = SSLModel.load(m.directory)  # once per model, for every split and its history
        unscaled = unscaled_inputs(cohort, model) if per_split else None
        shared = None
        for s in splits:
            cache = Layout(out).cache(s.index) if per_split else Layout(out).shared_cache
            cache.mkdir(parents=True, exist_ok=True)
            paths = (cache / f"model_{m.name}_X.npy", cache / f"model_{m.name}_Z.npy")
            if per_split or shared is None:
                X, Z = model_inputs(cohort, model, s.pool if per_split else None, unscaled)
                atomic_save(paths[0], X)
                atomic_save(paths[1], Z)
                shared = Z if shared is None else shared
            features[s.index][FeatureKey.genes(m.name)] = str(paths[0])
            features[s.index][FeatureKey.embedding(m.name)] = str(paths[1])
        atomic_savez(Layout(out).embedding(m.name), Z=shared[test0], labels=labels)
        history = model.history_
        if history is not None and not history.empty:
            atomic_write_text(Layout(out).history(m.name), history.to_csv(index=False))
