"""Models on the Hugging Face Hub: ``hf://org/name[@revision]`` as a model path, and publishing.

Downloads go through huggingface_hub's cache (``snapshot_download``), so a model fetched once
loads offline (``HF_HUB_OFFLINE=1``) and every copy is verified against its model card's hashes
before use. huggingface_hub is an optional extra: ``pip install 'exprssl[hub]'``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from .card import read_card, verify_files
from .errors import ConfigError, ModelNotFoundError

HUB_PREFIX = "hf://"


def is_hub_id(path) -> bool:
    return isinstance(path, str) and path.startswith(HUB_PREFIX)


def parse_hub_id(hub_id: str) -> tuple[str, str | None]:
    """``hf://org/name@rev`` -> ("org/name", "rev"); a malformed id is a one-line ConfigError."""
    body = hub_id[len(HUB_PREFIX) :] if hub_id.startswith(HUB_PREFIX) else hub_id
    repo, _, revision = body.partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts) or (_ and not revision):
        raise ConfigError(
            f"{hub_id}: not a hub model id (expected hf://org/name or hf://org/name@revision)"
        )
    return repo, revision or None


def _hf():
    try:
        import huggingface_hub
    except ImportError:
        raise ConfigError(
            "loading or pushing hub models needs huggingface_hub: pip install 'exprssl[hub]'"
        ) from None
    return huggingface_hub


def local_model_path(path: str | os.PathLike) -> Path:
    """A local model path, refused in one line when it is a hub id mistyped (``hf:/org/x``,
    ``HF://org/x``), a symbolic link loop or a link to nothing (not "no such directory")."""
    text = os.fspath(path)
    local = Path(text)
    if text.lower().startswith("hf:") and not is_hub_id(text) and not local.exists():
        raise ConfigError(
            f"{text}: not a model directory, nor a hub id: a hub id starts with {HUB_PREFIX} "
            f"(hf://org/name[@revision])"
        )
    try:
        local.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 raises this for a loop
        raise ModelNotFoundError(f"{text}: a symbolic link loop, not a model directory") from None
    except OSError as e:
        if local.is_symlink():
            what = (
                "a symbolic link loop"
                if e.errno == errno.ELOOP
                else "a symbolic link to a missing target"
            )
            raise ModelNotFoundError(f"{text}: {what}, not a model directory") from None
    return local


def resolve_model(path: str | os.PathLike) -> tuple[Path, dict[str, Any] | None]:
    """``resolve_model_path``'s directory and, for a hub id, the card it was verified against
    (None for a local path: nothing read yet), so a loader need not read and hash it again."""
    if not is_hub_id(path):
        return local_model_path(path), None
    repo, revision = parse_hub_id(str(path))
    hf = _hf()
    try:
        local = Path(hf.snapshot_download(repo_id=repo, revision=revision, repo_type="model"))
    except Exception as e:  # noqa: BLE001  offline misses, unknown repos, HTTP errors: one line each
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFoundError(
            f"{path}: not found on the hub or in the local cache ({reason})"
        ) from None
    meta = read_card(local)
    if meta is None:
        raise ModelNotFoundError(
            f"{path}: the hub copy has no model card (README.md), so its files cannot be verified"
        )
    return local, verify_files(local, meta)


def resolve_model_path(path: str | os.PathLike) -> Path:
    """A local model directory for ``path``: itself, or a hub id's snapshot in the
    huggingface_hub cache (downloaded unless ``HF_HUB_OFFLINE`` is set), verified against its
    card. A hub model without a card is refused: nothing would vouch for its files.

    Parameters
    ----------
    path
        A local model directory or a hub id (``"owner/name"``).

    Returns
    -------
    pathlib.Path
        The local model directory.

    Raises
    ------
    exprssl.errors.ModelNotFoundError
        A hub id neither on the hub nor in the cache, or a hub model without a card.
    exprssl.errors.DataFileError
        A file that fails the card's checksums.
    """
    return resolve_model(path)[0]


def push_to_hub(
    model_dir: str | os.PathLike, repo_id: str, token: str | None = None, private: bool = False
) -> str:
    """Publish a saved model directory (checked against its card first) as a hub model repo;
    returns the repo's URL. The card becomes the repo's README.

    Parameters
    ----------
    model_dir
        A directory written by ``SSLModel.save``.
    repo_id
        The hub repository, ``"owner/name"``.
    token
        A hub token; None uses the stored login.
    private
        Create the repository as private.

    Returns
    -------
    str
        The repository's URL.

    Raises
    ------
    exprssl.errors.ModelNotFoundError
        No such directory, or one without a model card.
    exprssl.errors.DataFileError
        A file that fails the card's checksums.
    exprssl.errors.ConfigError
        A malformed ``repo_id`` or one with ``@revision``.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelNotFoundError(f"{model_dir}: no such model directory")
    meta = read_card(model_dir)
    if meta is None:
        raise ModelNotFoundError(
            f"{model_dir}: no model card (saved by exprssl 0.2?); load and save it "
            "again to add one before publishing"
        )
    verify_files(model_dir, meta)
    repo, revision = parse_hub_id(repo_id)
    if revision:
        raise ConfigError(f"{repo_id}: push to a repo id without @revision")
    hf = _hf()
    api = hf.HfApi(token=token)
    url = api.create_repo(repo_id=repo, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        folder_path=str(model_dir),
        repo_id=repo,
        repo_type="model",
        commit_message="exprssl model",
        allow_patterns=None,
        ignore_patterns=[".*"],
    )
    return str(url)
