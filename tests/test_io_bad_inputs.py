"""Every bad input file in the corpus (tests/bad_inputs.py) gives one ExprsslError line naming the
file, through each Python entry point that reads it; `exprssl convert` leaves no output behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from bad_inputs import KINDS, bad_input_corpus

from exprssl import io, store
from exprssl.errors import ExprsslError

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
