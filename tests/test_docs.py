"""The public API documents its inputs and outputs (numpydoc), so `help()` and the docs say how
to call each function without reading its body."""

from __future__ import annotations

import inspect
from importlib import import_module
from itertools import pairwise

import pytest

# (module, attribute path) of every public function, method and class.
PUBLIC = [
    ("exprssl.io", "read_file"),
    ("exprssl.io", "load_dataset"),
    ("exprssl.io", "add_labels"),
    ("exprssl.api", "benchmark"),
    ("exprssl.model", "SSLModel"),
    ("exprssl.model", "SSLModel.fit"),
    ("exprssl.model", "SSLModel.transform"),
    ("exprssl.model", "SSLModel.fit_transform"),
    ("exprssl.model", "SSLModel.save"),
    ("exprssl.model", "SSLModel.load"),
    ("exprssl.model", "SSLModel.embed_preprocessed"),
    ("exprssl.model", "SSLModel.get_feature_names_out"),
    ("exprssl.preprocessing", "Preprocessor"),
    ("exprssl.preprocessing", "Preprocessor.fit"),
    ("exprssl.preprocessing", "Preprocessor.transform"),
    ("exprssl.preprocessing", "Preprocessor.save"),
    ("exprssl.preprocessing", "Preprocessor.load"),
    ("exprssl.preprocessing", "Preprocessor.from_options"),
    ("exprssl.store", "convert"),
    ("exprssl.store", "ExpressionStore"),
    ("exprssl.sources", "ExpressionSource.resolve"),
    ("exprssl.readers", "read_file"),
    ("exprssl.genes", "match_genes"),
    ("exprssl.genes", "reindex_genes"),
    ("exprssl.genes", "detect_id_system"),
    ("exprssl.card", "verify"),
    ("exprssl.card", "read_card"),
    ("exprssl.hub", "push_to_hub"),
    ("exprssl.hub", "resolve_model_path"),
    ("exprssl.attributions", "explain"),
    ("exprssl.attributions", "integrated_gradients"),
    ("exprssl.attributions", "stability"),
    ("exprssl.attributions", "overlap"),
    ("exprssl.attributions", "precision_at_k"),
    ("exprssl.evaluation.stats", "paired_difference"),
    ("exprssl.evaluation.schema", "Manifest.read"),
    ("exprssl.evaluation.schema", "read_summary"),
    ("exprssl.datasets", "load"),
    ("exprssl.datasets", "synthetic"),
    ("exprssl.datasets", "latent_programmes"),
]


def _resolve(module: str, path: str) -> object:
    obj: object = import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _has_section(doc: str, title: str) -> bool:
    lines = [line.strip() for line in doc.splitlines()]
    return any(line == title and nxt == "-" * len(title) for line, nxt in pairwise(lines))


def _takes_parameters(obj: object) -> bool:
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = inspect.signature(target).parameters
    return any(name not in ("self", "cls") for name in params)


@pytest.mark.parametrize(("module", "path"), PUBLIC, ids=[p for _, p in PUBLIC])
def test_public_api_has_numpydoc_sections(module: str, path: str) -> None:
    obj = _resolve(module, path)
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{module}.{path} has no docstring"
    if _takes_parameters(obj):
        assert _has_section(doc, "Parameters"), f"{module}.{path} lacks a Parameters section"
    if not inspect.isclass(obj):
        assert _has_section(doc, "Returns"), f"{module}.{path} lacks a Returns section"


def test_lazy_exports_are_covered() -> None:
    import exprssl

    covered = {path.split(".")[0] for _, path in PUBLIC}
    functions = {
        name
        for name, (_, attr) in exprssl._LAZY.items()  # noqa: SLF001
        if attr is not None
    }
    assert functions <= covered
