"""Saving and loading an ``SSLModel`` (as scvi-tools' ``_save_load``): the model directory's
files (``model_layout.ModelLayout``), written whole or not at all, and read back with one-line
errors naming the file at fault.

A model directory holds ``config.json`` (method, its options, the training options, the input
width and, for inputs with gene names, ``features_in.txt``), ``preprocessor.json`` (the fitted
preprocessing), ``genes.txt``, ``weights.safetensors`` (no code runs on load; a 0.3
``weights.pt`` is read with ``weights_only=True``), ``history.csv``, its curve ``loss.png`` and
the card. ``load_model``
sets the fitted state through ``SSLModel.set_fitted_state``, the method ``fit`` uses, so a round
trip keeps ``n_features_in_`` and ``feature_names_in_``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from sklearn.base import clone

from . import __version__
from .card import verify, write_card
from .errors import (
    ConfigError,
    DataFileError,
    ExprsslError,
    ModelNotFoundError,
    OutputPathError,
    TrainingDivergedError,
)
from .figures import plot_loss_curve
from .hub import resolve_model
from .methods import build_method, get_method
from .model_layout import FORMAT_VERSION, ModelLayout
from .outputs import artifact_kind, check_output, output_lock
from .preprocessing import Preprocessor
from .training import TrainConfig
from .utils import _umask, room_errors
from .validation import (
    WEIGHTS_METHOD_KEY,
    check_finite_preprocessor,
    check_finite_state,
    check_same_method,
    nonfinite_tensors,
)

log = logging.getLogger("exprssl")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def model_config(model) -> dict[str, Any]:
    """The content of a saved ``SSLModel``'s ``config.json``."""
    return {
        "format_version": FORMAT_VERSION,
        "exprssl_version": __version__,
        "method": model.method,
        "method_config": dict(model.method_params_),
        "train_config": dataclasses.asdict(model.train_config_),
        "n_features": len(model.genes_),
        "embedding_dim": model.embedding_dim_,
        "n_features_in": int(model.n_features_in_),
    }


def save_model(
    model,
    path: Path,
    *,
    overwrite: bool = False,
    license: str | None = None,
    datasets: list[str] | None = None,
) -> Path:
    """Write ``model``'s directory at ``path`` (see ``SSLModel.save``)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if torch.distributed.get_rank() != 0:  # under DDP every rank holds the same weights
            return path
    _check_finite_weights(model, path)
    check_output(path, "model", overwrite=overwrite)  # refuse before touching anything there
    with output_lock(path):
        check_output(path, "model", overwrite=overwrite)  # and again: a save may just have ended
        with room_errors(path):
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            with room_errors(path, tmp):  # a full disk: one line, the earlier model unchanged
                _write_files(model, tmp)
                write_card(model, tmp, license=license, datasets=datasets)  # last: hashes the rest
                os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
                _move_into_place(tmp, path)
        except OSError as e:
            raise OutputPathError(
                f"{path}: could not write the model ({e.strerror or e})"
            ) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    model.model_dir_ = str(path)
    return path


def _check_finite_weights(model, path: Path) -> None:
    bad = nonfinite_tensors(model.method_.state_dict())
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise TrainingDivergedError(
            f"{path}: not saved: weights {bad[0]}{more} are not finite "
            "(training diverged; try a lower lr)"
        )


def _write_files(model, directory: Path) -> None:
    files = ModelLayout(directory)
    files.config.write_text(json.dumps(model_config(model), indent=2, default=str))
    model.preprocessor_.save(files.preprocessor)
    files.genes.write_text("\n".join(model.genes_) + "\n")
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        files.features_in.write_text("\n".join(map(str, names)) + "\n")
    save_weights(model.method_.state_dict(), model.method, files.weights)
    model.history_.to_csv(files.history, index=False)
    plot_loss_curve(model.history_, files.loss_plot, f"{model.method}: pretraining loss")


def save_weights(state: dict[str, torch.Tensor], method: str, file: Path) -> None:
    """A state dict as safetensors, with the method that wrote it in the metadata (a load
    refuses these weights under another method's config)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(tensors, str(file), metadata={WEIGHTS_METHOD_KEY: method})


def load_model(cls: type, path: str | os.PathLike, map_location: str = "cpu"):
    """The model saved at ``path``, a directory or a hub id (see ``SSLModel.load``)."""
    # a hub id (hf://org/name) -> its cached snapshot, already verified against its card
    path, card = resolve_model(path)
    if not path.is_dir():
        raise ModelNotFoundError(
            f"{path}: no such model directory (expected the --out of 'exprssl pretrain')"
        )
    files = ModelLayout(path)
    missing = files.missing()
    if missing:
        raise ModelNotFoundError(
            f"{path}: not an exprssl model directory (missing {', '.join(missing)})"
        )
    if card is None:  # a local directory: its files against the card's hashes (0.2: a warning)
        card = verify(path)
    cfg = _read_config(files.config)
    prep = Preprocessor.load(files.preprocessor)
    if not prep.__sklearn_is_fitted__():
        raise DataFileError(f"{files.preprocessor}: the preprocessing was never fitted")
    check_finite_preprocessor(prep, str(files.preprocessor))
    method = _read_weights(files.weights, files.config, cfg, map_location)
    if len(prep.genes_) != cfg["n_features"]:
        raise DataFileError(
            f"{files.preprocessor}: {len(prep.genes_)} genes, but "
            f"{files.CONFIG} and {files.weights.name} are for {cfg['n_features']}; the files "
            "come from different models"
        )
    train = {k: v for k, v in cfg["train_config"].items() if k in cls.TRAIN_FIELDS}
    try:
        model = cls(
            cfg["method"], method_params=dict(method.config), preprocessor=clone(prep), **train
        )
        train_config = TrainConfig(**train)
    except (ExprsslError, TypeError) as e:
        raise DataFileError(f"{files.config}: invalid train_config ({_first_line(e)})") from None
    n_features, names = _input_features(files, cfg, prep)
    model.set_fitted_state(
        method,
        prep,
        train_config,
        _read_history(files.history),
        n_features,
        names,
        str(path),
    )
    model.card_ = card
    return model


def _input_features(files: ModelLayout, cfg: dict[str, Any], prep: Preprocessor):
    """(n_features_in_, feature_names_in_) as fit recorded them; a model saved before 0.3
    records neither, and the preprocessor's input stands for them."""
    names = None
    if files.features_in.is_file():
        names = files.features_in.read_text(encoding="utf-8").splitlines()
    elif "n_features_in" not in cfg:
        names = getattr(prep, "feature_names_in_", None)
    n = cfg.get("n_features_in", prep.n_features_in_)
    if (
        isinstance(n, bool)
        or not isinstance(n, int)
        or n < 1
        or (names is not None and len(names) != n)
    ):
        raise DataFileError(
            f"{files.config}: 'n_features_in' must be the input's number "
            f"of features ({'' if names is None else len(names)}), got {n!r}"
        )
    return n, names


def _move_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished directory ``tmp`` to ``path``. An existing model there (``save`` has
    checked that it is one, and that replacing it is allowed) is moved aside under a unique name
    first, and restored if the rename fails."""
    if artifact_kind(path) != "model":
        os.replace(tmp, path)  # nothing there, or an empty directory (rename replaces it)
        return
    aside = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:12]}")
    os.replace(path, aside)
    try:
        os.replace(tmp, path)
    except OSError:
        os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _read_config(file: Path) -> dict[str, Any]:
    """config.json, checked: a JSON object with a known method and a positive n_features."""
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFileError(f"{file}: not valid JSON ({_first_line(e)})") from None
    if not isinstance(cfg, dict):
        raise DataFileError(
            f"{file}: expected a JSON object of model settings, got {type(cfg).__name__}"
        )
    version = cfg.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataFileError(
            f"{file}: model format version {version!r} is not one this exprssl reads "
            f"(up to {FORMAT_VERSION}); upgrade exprssl or pretrain again"
        )
    if not isinstance(cfg.get("method"), str):
        raise DataFileError(f"{file}: no 'method' name")
    try:
        get_method(cfg["method"])
    except ConfigError as e:
        raise DataFileError(f"{file}: {e}") from None
    n = cfg.get("n_features")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataFileError(
            f"{file}: 'n_features' (the number of genes the encoder takes) must be a positive "
            f"integer, got {n!r}"
        )
    for key in ("method_config", "train_config"):
        cfg[key] = {} if cfg.get(key) is None else cfg[key]
        if not isinstance(cfg[key], dict):
            raise DataFileError(
                f"{file}: '{key}' must be a JSON object, got {type(cfg[key]).__name__}"
            )
    return cfg


def _read_weights(
    file: Path, config_file: Path, cfg: dict[str, Any], map_location: str
) -> torch.nn.Module:
    """The method described by config.json with the weights of ``file``; a damaged file or one
    from another model is a one-line DataFileError."""
    try:
        method = build_method(cfg["method"], cfg["n_features"], **cfg["method_config"])
    except ExprsslError as e:
        raise DataFileError(f"{config_file}: {e}") from None
    state, written_by = _read_state(file, map_location)
    check_same_method(cfg["method"], written_by, str(file))
    check_finite_state(state, str(file))
    expected = method.state_dict()
    for name, tensor in expected.items():
        got = state.get(name)
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
            found = (
                "missing"
                if got is None
                else f"of shape {tuple(got.shape)}"
                if isinstance(got, torch.Tensor)
                else f"a {type(got).__name__}"
            )
            raise DataFileError(
                f"{file}: does not match {config_file.name} (method '{cfg['method']}', "
                f"n_features {cfg['n_features']}): {name} is {found}, expected shape "
                f"{tuple(tensor.shape)}"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise DataFileError(
            f"{file}: does not match {config_file.name} (method '{cfg['method']}'): "
            f"unexpected tensors {', '.join(map(str, extra[:3]))}"
        )
    method.load_state_dict(state)
    method.eval()
    return method


def _read_state(file: Path, map_location: str) -> tuple[dict[str, Any], str | None]:
    """(state dict, the method that wrote it) of a weights file of either format; a damaged
    file is a one-line DataFileError. Neither format runs code: safetensors holds tensors only,
    and a 0.3 ``weights.pt`` is read with ``weights_only=True``, which refuses anything else."""
    try:
        if file.name == ModelLayout.WEIGHTS:
            from safetensors import safe_open

            with safe_open(str(file), framework="pt", device=str(map_location)) as f:
                state = {k: f.get_tensor(k) for k in f.keys()}
                return state, (f.metadata() or {}).get(WEIGHTS_METHOD_KEY)
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001  a damaged file fails in many ways inside the readers
        raise DataFileError(
            f"{file}: not readable model weights (damaged, or not written by exprssl: "
            f"{_first_line(e)})"
        ) from None
    if not isinstance(state, dict):
        raise DataFileError(
            f"{file}: not readable model weights (a {type(state).__name__}, not a state dict)"
        )
    return state, state.pop(WEIGHTS_METHOD_KEY, None)


def _read_history(file: Path) -> pd.DataFrame:
    """The per-epoch history; it only informs, so a damaged file is a warning, not an error."""
    if not file.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        log.warning("%s: unreadable training history, ignored (%s)", file, _first_line(e))
        return pd.DataFrame()
