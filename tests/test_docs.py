"""The documentation holds: the public API documents its inputs and outputs (numpydoc), so
`help()` and the API reference say how to call each function; the site builds with warnings as
errors; the quick start's commands run as written, in order; the README's links lead to pages."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from importlib import import_module
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

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


# --- the site -------------------------------------------------------------------------------

DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _docs_tools_missing() -> list[str]:
    return [name for name in DOCS_TOOLS if importlib.util.find_spec(name) is None]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built once, as CI and `make docs` build it (`--strict`: a warning fails)."""
    missing = _docs_tools_missing()
    if missing:
        pytest.skip(f"docs tools not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file"]
    cmd += [str(ROOT / "mkdocs.yml"), "--site-dir", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    return out


def test_site_builds_every_page(site: Path) -> None:
    pages = sorted(p.relative_to(DOCS).with_suffix("") for p in DOCS.rglob("*.md"))
    assert len(pages) >= 11
    for page in pages:
        html = site / ("index.html" if page.name == "index" else page / "index.html")
        assert html.is_file(), f"docs/{page}.md was not built"


@pytest.mark.parametrize(("module", "path"), PUBLIC, ids=[p for _, p in PUBLIC])
def test_api_reference_documents_public_api(site: Path, module: str, path: str) -> None:
    html = (site / "api" / "index.html").read_text(encoding="utf-8")
    obj = _resolve(module, path)
    ids = {f"{obj.__module__}.{obj.__qualname__}"}  # or any public name of the same object
    ids |= {f"{m}.{p}" for m, p in PUBLIC if _resolve(m, p) is obj}
    assert any(f'id="{i}"' in html for i in ids), f"{module}.{path} is not in docs/api.md"


# --- the README ---------------------------------------------------------------------------


def test_readme_is_a_front_page_whose_links_lead_to_pages() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert "make demo" in readme and "make test" in readme
    links = re.findall(r"\]\((docs/[^)#]+\.md)(?:#[^)]*)?\)", readme)
    assert len(set(links)) >= 10
    for link in links:
        assert (ROOT / link).is_file(), f"README links to a missing page: {link}"
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.rglob("*.md"):
        assert str(page.relative_to(DOCS)) in nav, f"{page} is not in mkdocs.yml's nav"


# --- the quick start ----------------------------------------------------------------------

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def quickstart_blocks() -> list[tuple[str, str, str]]:
    """(section heading, language, code) of every fenced block of the quick start, in order."""
    text = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        headings = re.findall(r"^## (.+)$", text[: match.start()], re.MULTILINE)
        blocks.append((headings[-1] if headings else "", match.group(1), match.group(2)))
    return blocks


def test_quickstart_blocks_are_commands_or_python() -> None:
    blocks = quickstart_blocks()
    assert {lang for _, lang, _ in blocks} == {"bash", "python"}
    install = [code for section, _, code in blocks if section == "Install"]
    assert install == ["pip install -e .\n"]  # not run here: it would reinstall the package


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    """Every block after the install, in order, in an empty directory: the example files are
    written from the bundled data, `info` reads them, the dry run writes nothing, the quick
    look ends with a report."""
    bin_dir = str(Path(sys.executable).parent)  # `exprssl` beside the interpreter running us
    path = bin_dir + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "PATH": path, "COLUMNS": "120"}
    outputs = []
    for section, lang, code in quickstart_blocks():
        if section == "Install":
            continue
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable]
        done = subprocess.run(
            cmd,
            input=code if lang == "python" else None,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, f"{section}: {code}\n{done.stderr[-3000:]}"
        outputs.append((section, done.stdout + done.stderr))
        if "--dry-run" in code:
            assert "plan:" in outputs[-1][1] and "estimate:" in outputs[-1][1]
            assert not (tmp_path / "bench").exists(), "the dry run wrote its output directory"
    sections = [section for section, _ in outputs]
    assert sections == ["Your files", "Look at them", "How long will it take?", "A first look"]
    info = dict(outputs)["Look at them"]
    assert "128 samples x 12625 genes" in info
    assert "label mol.biol (6 classes): NEG: 74, BCR/ABL: 37" in info
    assert (tmp_path / "bench" / "report.html").stat().st_size > 10_000
    summary = pd.read_csv(tmp_path / "bench" / "summary.csv")
    assert set(summary["approach"]) >= {"scarf+linear_probe", "scarf+finetune", "logreg"}
    assert set(summary["fraction"]) == {0.5}
