"""Every bad input file in the corpus (tests/bad_inputs.py) gives one ExprsslError line naming the
file, through each Python entry point that reads it; `exprssl convert` leaves no output behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from bad_inputs import HOSTILE_NAMES, KINDS, SHEET_LABELS, bad_input_corpus

from exprssl import io, store
from exprssl.config_file import YAMLTooLarge, load_yaml
from exprssl.errors import ExprsslError
from exprssl.text import literal

with tempfile.TemporaryDirectory() as _d:
    CASES = sorted(bad_input_corpus(Path(_d)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return bad_input_corpus(tmp_path_factory.mktemp("corpus"))


def _assert_one_line(error: ExprsslError, case) -> None:
    msg = str(error)
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.startswith(f"{case.path}: "), msg
    assert case.expect in msg, msg


def _entry_points(case, out_dir: Path):
    if case.kind == "data":
        return {
            "read_file": lambda: io.read_file(case.path),
            "load_dataset": lambda: io.load_dataset(case.path),
        }
    if case.kind == "labels":
        good = io.read_file(case.data)
        return {
            "add_labels": lambda: io.add_labels(good, case.path),
            "load_dataset(labels=)": lambda: io.load_dataset(case.data, labels=case.path),
        }
    return {"convert": lambda: store.convert(case.path, out_dir / "store.h5ad")}


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_naming_the_file(corpus, name, tmp_path):
    case = corpus[name]
    assert issubclass(case.error, ExprsslError)
    for entry, call in _entry_points(case, tmp_path).items():
        with pytest.raises(case.error) as info:
            call()
        try:
            _assert_one_line(info.value, case)
        except AssertionError as e:
            raise AssertionError(f"{entry}: {e}") from None
    if case.kind == "convert":
        assert list(tmp_path.iterdir()) == []  # no store, no temp file left behind
    if case.kind != "labels" and case.path.suffix == ".h5ad":  # streaming opens h5ad its own way
        with pytest.raises(ExprsslError) as info:
            store.open_streamed(case.path, stream=True)
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith(f"{case.path}: "), msg


def test_corpus_covers_every_reader(corpus):
    kinds = {c.kind for c in corpus.values()}
    assert kinds == set(KINDS)
    assert len(corpus) >= 95  # 71 in 0.2, 24 file cases added for issue 21
    assert all(c.data is not None for c in corpus.values() if c.kind == "labels")


# ---------------------------------------------------------------- round four (issue 28)
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_literal_in_every_medium(name):
    """One function escapes user text for rich, matplotlib, Markdown and HTML: each shows the
    name as written (rich's parse, matplotlib's math detection and html.unescape undo it)."""
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cbook
    from rich.text import Text

    assert Text.from_markup(f"[b]{literal(name)}[/b]").plain == name  # as the CLI uses it
    shown = literal(name, "plot")
    assert not cbook.is_math_text(shown) and shown.replace(r"\$", "$").lstrip(" ") == name
    fig, ax = plt.subplots()
    ax.plot([0, 1], label=shown)
    ax.set_title(shown)
    ax.legend()
    fig.canvas.draw()  # mathtext would raise on '$\mathrm{x$'
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [shown]  # not dropped
    plt.close(fig)
    assert html.unescape(literal(name, "html")) == name and "<" not in literal(name, "html")
    md = literal(name, "markdown")
    assert "<" not in md and all(f"\\{c}" in md for c in "$[*_" if c in name)


def test_control_characters_are_shown_not_sent_to_the_terminal():
    from rich.text import Text

    assert Text.from_markup(literal("a\nb\x1b[31mc")).plain == "a\\nb\\x1b[31mc"
    with pytest.raises(ValueError, match="medium must be one of"):
        literal("x", "pdf")


@pytest.mark.parametrize("values,classes,n_missing", SHEET_LABELS)
def test_labels_compared_as_a_reader_sees_them(values, classes, n_missing):
    y = io.label_values(pd.Series(values * 3), "tissue", quiet=True)
    assert sorted(y.dropna().unique()) == classes
    assert int(y.isna().sum()) == 3 * n_missing


def test_tcga_markers_leave_a_numeric_column_numeric():
    ages = pd.Series(["[Not Available]"] * 3 + [str(20 + 1.5 * i) for i in range(20)])
    assert io.looks_continuous(ages) == 20


def test_alias_bomb_is_refused_quickly_and_plain_aliases_load():
    import time

    from bad_inputs import _BOMB

    t0 = time.perf_counter()
    with pytest.raises(YAMLTooLarge, match="100,000 values"):
        load_yaml(_BOMB)
    assert time.perf_counter() - t0 < 1
    doc = load_yaml("base: &b {x: 1}\nuse: {<<: *b, y: 2}\nagain: *b\n")
    assert doc == {"base": {"x": 1}, "use": {"x": 1, "y": 2}, "again": {"x": 1}}
    with pytest.raises(YAMLTooLarge, match="nested too deeply"):
        load_yaml("[" * 50_000 + "]" * 50_000)
