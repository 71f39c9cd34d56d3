"""Model cards: a README.md in every saved model directory, for people and for checks.

The card says what the encoder was trained on and how (so a user of a shared model can judge
whether it fits their cohort), and its YAML front matter (the Hugging Face model card layout)
holds the sha256 of every other file, so a model fetched from anywhere is verified on load.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml

from .config_file import load_yaml
from .errors import DataFileError
from .model_layout import ModelLayout
from .sources import ExpressionSource

log = logging.getLogger("exprssl")
CARD_FILE = ModelLayout.CARD
CARD_VERSION = 1
_FENCE = "---\n"


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def _content_sha256(source: ExpressionSource) -> tuple[str, str]:
    """A hash of in-memory data (values, gene and sample ids), or of a store's gene ids and
    shape (hashing a store's values would mean reading all of it again)."""
    h = hashlib.sha256()
    if source.streamed:
        h.update("\n".join(map(str, source.store.genes)).encode())
        h.update(repr(tuple(source.store.shape)).encode())
        return h.hexdigest(), "gene ids and shape"
    X, genes, samples = source.parts()
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        for part in (X.data, X.indices, X.indptr):
            h.update(np.ascontiguousarray(part).tobytes())
    else:
        h.update(np.ascontiguousarray(np.asarray(X, dtype=np.float32)).tobytes())
    for ids in (genes, samples):
        if ids is not None:
            h.update("\n".join(map(str, ids)).encode())
    return h.hexdigest(), "values, gene and sample ids"


def describe_data(source: ExpressionSource) -> list[dict[str, Any]]:
    """The training data as the card lists it: name, profiles, genes, content hash."""
    name = source.given_path or source.recorded_source or f"in-memory {type(source.given).__name__}"
    n_profiles, n_genes = source.shape
    digest, of = _content_sha256(source)
    return [
        {
            "name": name,
            "n_profiles": int(n_profiles),
            "n_genes": int(n_genes),
            "sha256": digest,
            "hash_of": of,
        }
    ]


def _history_summary(history: pd.DataFrame) -> dict[str, Any]:
    if history is None or history.empty or "train_loss" not in history:
        return {}
    out: dict[str, Any] = {"epochs": len(history)}
    for col in ("train_loss", "val_loss"):
        s = (
            pd.to_numeric(history.get(col), errors="coerce").dropna()
            if col in history
            else pd.Series()
        )
        if len(s):
            best = int(s.idxmin())
            out[col] = {
                "first": float(s.iloc[0]),
                "best": float(s.min()),
                "best_epoch": int(history["epoch"].iloc[best]) if "epoch" in history else best + 1,
                "last": float(s.iloc[-1]),
            }
    for col in ("emb_std", "eff_rank"):
        s = pd.to_numeric(history[col], errors="coerce").dropna() if col in history else pd.Series()
        if len(s):
            out[col] = {"first": float(s.iloc[0]), "last": float(s.iloc[-1]), "min": float(s.min())}
    return out


DEFAULT_LICENSE = "unknown"  # the weights derive from the training data, whose terms we cannot know
PIPELINE_TAG = "feature-extraction"  # profiles in, embeddings out


def card_metadata(
    model,
    directory: Path,
    license: str | None = None,
    datasets: list[str] | None = None,
) -> dict[str, Any]:
    """The machine-readable part: the keys the Hugging Face Hub indexes (``library_name``,
    ``license``, ``datasets``, ``tags``, ``pipeline_tag``), then everything the text says and
    the files' hashes under ``exprssl``."""
    import torch

    from . import __version__
    from .genes import detect_id_system

    sources = (
        getattr(model, "data_sources_", None)
        or (getattr(model, "card_", None) or {}).get("data_sources")
        or []
    )
    files = {
        p.name: file_sha256(p)
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != CARD_FILE and not p.name.startswith(".")
    }
    hub = {"library_name": "exprssl", "license": license or DEFAULT_LICENSE}
    if datasets:
        hub["datasets"] = [str(d) for d in datasets]
    hub["tags"] = ["exprssl", "gene-expression", "self-supervised", model.method]
    hub["pipeline_tag"] = PIPELINE_TAG
    return {
        **hub,
        "exprssl": {
            "card_version": CARD_VERSION,
            "method": model.method,
            "method_options": dict(model.method_params_),
            "train_options": {k: v for k, v in vars(model.train_config_).items()},
            "seed": int(model.train_config_.seed),
            "preprocessing": dict(model.preprocessor_.options_),
            "data_sources": list(sources),
            "genes": {
                "count": len(model.genes_),
                "id_system": detect_id_system(model.genes_),
                "first": list(model.genes_[:5]),
            },
            "embedding_dim": int(model.embedding_dim_),
            "training": _history_summary(model.history_),
            "versions": {"exprssl": __version__, "torch": torch.__version__.split("+")[0]},
            "files_sha256": files,
        },
    }


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) and math.isfinite(x) else str(x)


def _intro(m: dict[str, Any]) -> list[str]:
    lines = [
        f"# exprssl {m['method'].upper()} encoder",
        "",
        f"A self-supervised encoder of bulk gene-expression profiles ({m['genes']['count']:,} "
        f"genes in, {m['embedding_dim']} dimensions out), trained with exprssl "
        f"{m['versions']['exprssl']}.",
        "Load it with `exprssl.SSLModel.load(path_or_hub_id)`; its files are verified against the "
        "hashes above.",
        "",
        "## Method and options",
        "",
        f"- method: `{m['method']}`",
    ]
    lines += [f"- {k}: `{v}`" for k, v in m["method_options"].items()]
    return lines + [f"- training {k}: `{v}`" for k, v in m["train_options"].items()]


def _data_and_genes(m: dict[str, Any]) -> list[str]:
    lines = ["", "## Training data", ""]
    if m["data_sources"]:
        lines += ["| source | profiles | genes | sha256 (of) |", "| --- | ---: | ---: | --- |"]
        lines += [
            f"| {s['name']} | {s['n_profiles']:,} | {s['n_genes']:,} | `{s['sha256'][:16]}…` "
            f"({s.get('hash_of', 'content')}) |"
            for s in m["data_sources"]
        ]
    else:
        lines.append("Not recorded (the model was trained before exprssl recorded its data).")
    g = m["genes"]
    lines += [
        "",
        "## Genes",
        "",
        f"{g['count']:,} genes, identifier system: **{g['id_system']}** (e.g. "
        f"{', '.join(g['first'])}; the full list is genes.txt). Cohorts in another system "
        "(Ensembl ids, HGNC symbols, aliases, Entrez ids) are matched through exprssl's "
        "identifier table; ambiguous names are never guessed.",
        "",
        "## Preprocessing",
        "",
    ]
    return lines + [f"- {k}: `{v}`" for k, v in m["preprocessing"].items()]


def _training_curve(t: dict[str, Any]) -> list[str]:
    lines = ["", "## Training curve", ""]
    if not t:
        return lines + ["No training history was saved."]
    lines.append(f"{t['epochs']} epochs.")
    for col in ("train_loss", "val_loss"):
        if col in t:
            c = t[col]
            lines.append(
                f"- {col}: first {_fmt(c['first'])}, best {_fmt(c['best'])} (epoch "
                f"{c['best_epoch']}), last {_fmt(c['last'])}"
            )
    if "eff_rank" in t or "emb_std" in t:
        lines += [
            "",
            "Collapse monitors (on held-out rows; an effective rank near 1 means "
            "collapsed embeddings):",
        ]
        for col in ("eff_rank", "emb_std"):
            if col in t:
                c = t[col]
                lines.append(
                    f"- {col}: first {_fmt(c['first'])}, last {_fmt(c['last'])}, "
                    f"min {_fmt(c['min'])}"
                )
    return lines


def _software_and_limits(m: dict[str, Any]) -> list[str]:
    return [
        "",
        "## Software",
        "",
        f"exprssl {m['versions']['exprssl']}, torch {m['versions']['torch']}, seed {m['seed']}.",
        "",
        "## Intended use and limits",
        "",
        "- Intended: embedding bulk expression profiles of the same kind (organism, assay, "
        "scale) as the training data, for downstream models with few labels, and as a "
        "pretrained approach in `exprssl benchmark`.",
        "- Not validated for other assays, organisms or single-cell data; genes missing from "
        "a cohort are imputed with their training mean, so low gene coverage degrades the "
        "embedding (exprssl reports the coverage and refuses below a minimum).",
        "- Not a diagnostic tool. Whether it helps on your cohort is an empirical question: "
        "`exprssl benchmark` compares it with supervised baselines on the same splits.",
        "",
    ]


def render(meta: dict[str, Any]) -> str:
    """The card's text: YAML front matter, then the human-readable sections."""
    m = meta["exprssl"]
    lines = _intro(m) + _data_and_genes(m) + _training_curve(m["training"])
    lines += _software_and_limits(m)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100)
    return f"{_FENCE}{front}{_FENCE}\n" + "\n".join(lines)


def write_card(
    model,
    directory: str | os.PathLike,
    license: str | None = None,
    datasets: list[str] | None = None,
) -> Path:
    """Write README.md into a model directory whose other files are written (they are hashed).
    ``license`` (a Hub license id) defaults to ``"unknown"``; ``datasets`` are Hub dataset ids."""
    directory = Path(directory)
    path = directory / CARD_FILE
    meta = card_metadata(model, directory, license=license, datasets=datasets)
    path.write_text(render(meta), encoding="utf-8")
    return path


def front_matter(text: str, path: Path) -> Any:
    """The card's YAML front matter, through ``huggingface_hub.ModelCard`` (the Hub's own
    reading) when it is installed, else parsed here; an unreadable block is a DataFileError."""
    if not text.startswith(_FENCE) or _FENCE not in text[len(_FENCE) :]:
        raise DataFileError(f"{path}: a model card without its metadata block (--- YAML ---)")
    try:
        from huggingface_hub import ModelCard
    except ImportError:
        ModelCard = None
    try:
        block = text[len(_FENCE) : text.index("\n" + _FENCE, len(_FENCE) - 1) + 1]
        meta = load_yaml(block)  # bounded: an alias bomb is refused before any expansion
        if ModelCard is not None:
            return ModelCard(text, ignore_metadata_errors=True).data.to_dict()
        return meta
    except (yaml.YAMLError, ValueError) as e:
        raise DataFileError(
            f"{path}: unreadable card metadata ({str(e).splitlines()[0]})"
        ) from None


def read_card(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The card's ``exprssl`` metadata, or None for a directory without a card.

    Parameters
    ----------
    directory
        A model directory.

    Returns
    -------
    dict or None
        The card's ``exprssl`` metadata, or None for a directory without a card.
    """
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        return None
    meta = front_matter(path.read_text(encoding="utf-8", errors="replace"), path)
    if not isinstance(meta, dict) or not isinstance(meta.get("exprssl"), dict):
        raise DataFileError(f"{path}: the card's metadata has no 'exprssl' section")
    return meta["exprssl"]


def verify(directory: str | os.PathLike) -> dict[str, Any] | None:
    """Check every file the card lists against its sha256; a mismatch or a missing file is a
    one-line DataFileError. A directory without a card (saved by exprssl 0.2) loads with a
    warning and returns None.

    Parameters
    ----------
    directory
        A model directory.

    Returns
    -------
    dict or None
        The card's ``exprssl`` metadata, or None for a directory without a card.

    Raises
    ------
    exprssl.errors.DataFileError
        A listed file missing or not matching its checksum, or an unreadable card.
    """
    directory = Path(directory)
    meta = read_card(directory)
    if meta is None:
        log.warning(
            "%s: no model card (saved by exprssl 0.2 or earlier): files not verified; "
            "save it again to add one",
            directory,
        )
        return None
    return verify_files(directory, meta)


def verify_files(directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """``verify`` with the card already read (``read_card``): every file ``meta`` lists checked
    against its sha256; returns ``meta``."""
    files = meta.get("files_sha256")
    weights = (ModelLayout.WEIGHTS, ModelLayout.LEGACY_WEIGHTS)
    if not isinstance(files, dict) or not any(w in files for w in weights):
        raise DataFileError(
            f"{directory / CARD_FILE}: the card lists no file hashes ({ModelLayout.WEIGHTS})"
        )
    for name, expected in files.items():
        path = directory / str(name)
        if not path.is_file():
            raise DataFileError(f"{path}: listed in the model card but missing")
        if file_sha256(path) != expected:
            raise DataFileError(
                f"{path}: sha256 differs from the model card's (the file was changed or "
                "damaged after saving)"
            )
    return meta
