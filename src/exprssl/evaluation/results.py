"""The benchmark's result files, owned by the parent process: written atomically, read on resume.

- ``results.csv``: one row per cell and metric (split, approach, fraction, seed);
- ``predictions.parquet``: one row per cell and test sample (its predicted class), what the
  paired bootstrap resamples;
- ``tuning.csv``: the hyperparameters each cell chose by inner CV, and why defaults were kept.

A cell counts as done only when its results and its predictions are both on disk; on reading,
every file keeps the rows of finished cells only, so a run killed between two writes recomputes
that cell on resume and no file holds it twice (the paired comparison needs each once).
Each file is checked as it is read (one cut short by a full disk or an interrupted copy, a
parquet file without its footer, a row whose numbers no longer parse, a cell without all its
metrics or with a wrong number of predictions): the cells whose records are missing or damaged
are recomputed, and one line says how many.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import atomic_path, atomic_write_text, plural
from .cells import Approach, CellOutcome
from .metrics import METRICS
from .schema import (  # noqa: F401  (the column lists are importable here too)
    CELL_KEY,
    PREDICTION_COLUMNS,
    RESULT_COLUMNS,
    RESULT_ORDER,
    TUNING_COLUMNS,
    Layout,
    approach_names,
)
from .schema import cell_key as _key

log = logging.getLogger("exprssl")
# columns read back as numbers (a line cut in a number's middle must not pass as text)
_NUMBERS = ("split", "fraction", "seed", "n_labelled", "value", "test_index", "y_true", "y_pred")
_INTEGERS = ("split", "seed", "n_labelled", "test_index", "y_true", "y_pred")


class ResultStore:
    """The parent's record of finished cells. A cell counts as done only when both its results
    and its predictions are on disk: on reading, rows of any other cell (a run killed between
    two writes) are dropped from every file, so a resumed run recomputes that cell once and the
    files never hold it twice."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.layout = Layout(self.out)
        damaged: list[str] = []  # the files that no longer read
        results = _read(self.layout.results, RESULT_COLUMNS, _read_csv, damaged)
        preds = _read(self.layout.predictions, PREDICTION_COLUMNS, pd.read_parquet, damaged)
        tuning = _read(self.layout.tuning, TUNING_COLUMNS, _read_csv, damaged)
        results = results.assign(approach=approach_names(results.fillna({"kind": ""})))
        checked = [
            _checked(results, _bad_results),
            _checked(preds, _bad_predictions),
            _checked(tuning, _bad_tuning),
        ]
        bad = set().union(*(b for _, b in checked))
        cells = [_cells(f) for f, _ in checked]
        recorded = set().union(*(keys for _, keys in cells))
        self.done = (set(cells[0][1]) & set(cells[1][1]) & set(cells[2][1])) - bad
        self.recomputed = len(recorded - self.done)  # cells with records, to be computed again
        self._results, self._preds, self._tuning = (
            _finished(f, ids, keys, self.done)
            for (f, _), (ids, keys) in zip(checked, cells, strict=True)
        )
        self._results = [f.drop(columns="approach") for f in self._results]
        self._dirty = bool(damaged)  # a damaged file is rewritten whole
        if self.recomputed or damaged:
            log.warning(
                "%s: the records of %s are missing or damaged%s; they will be recomputed",
                self.out,
                plural(self.recomputed, "finished cell"),
                f" ({', '.join(damaged)})" if damaged else "",
            )

    def has(self, split: int, approach: Approach, fraction: float, seed: int) -> bool:
        return _key(split, approach.name, fraction, seed) in self.done

    def add(self, outcomes: list[CellOutcome]) -> None:
        for o in outcomes:
            a = o.approach
            self._results.append(
                pd.DataFrame(
                    [
                        {
                            "split": o.split,
                            "method": a.method,
                            "kind": a.kind,
                            "head": a.head,
                            "fraction": o.fraction,
                            "n_labelled": o.n_labelled,
                            "seed": o.seed,
                            "metric": k,
                            "value": v,
                        }
                        for k, v in o.scores.items()
                    ],
                    columns=RESULT_COLUMNS,
                )
            )
            self._preds.append(
                pd.DataFrame(
                    {
                        "split": o.split,
                        "seed": o.seed,
                        "fraction": o.fraction,
                        "approach": a.name,
                        "test_index": o.test_index,
                        "y_true": o.y_true,
                        "y_pred": o.y_pred,
                    },
                    columns=PREDICTION_COLUMNS,
                )
            )
            self._tuning.append(
                pd.DataFrame(
                    [
                        {
                            "split": o.split,
                            "seed": o.seed,
                            "fraction": o.fraction,
                            "approach": a.name,
                            "params": json.dumps(o.params, default=str),
                            "note": o.note,
                            "seconds": round(o.seconds, 3),
                        }
                    ],
                    columns=TUNING_COLUMNS,
                )
            )
            self.done.add(_key(o.split, a.name, o.fraction, o.seed))
        self._dirty = bool(outcomes) or self._dirty

    def results(self) -> pd.DataFrame:
        """Every finished cell, in a stable order (split, method, head, fraction, seed)."""
        self._results = [
            _concat(self._results, RESULT_COLUMNS).sort_values(
                RESULT_ORDER, kind="stable", ignore_index=True
            )
        ]
        return self._results[0]

    def predictions(self) -> pd.DataFrame:
        self._preds = [_concat(self._preds, PREDICTION_COLUMNS)]
        return self._preds[0]

    def tuning(self) -> pd.DataFrame:
        self._tuning = [_concat(self._tuning, TUNING_COLUMNS)]
        return self._tuning[0]

    def flush(self) -> None:
        """Write the three files atomically. A kill between two writes leaves a cell in one
        file only; reading drops it everywhere (see the class docstring)."""
        if not self._dirty:
            return
        with atomic_path(self.layout.predictions) as tmp:
            self.predictions().to_parquet(tmp, index=False)
        atomic_write_text(self.layout.tuning, self.tuning().to_csv(index=False))
        atomic_write_text(self.layout.results, self.results().to_csv(index=False))
        self._dirty = False


def _read(path: Path, columns: list[str], reader, damaged: list[str]) -> pd.DataFrame:
    """``path``'s table with its numbers parsed, or an empty one (named in ``damaged``) when
    it no longer reads or lacks a column."""
    empty = pd.DataFrame(columns=columns)
    if not path.exists():
        return empty
    try:
        frame = reader(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid and pandas' errors are both
        damaged.append(f"{path.name}: {' '.join(str(e).split())[:80] or type(e).__name__}")
        return empty
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        damaged.append(f"{path.name}: no column {', '.join(missing)}")
        return empty
    frame = frame[columns].copy()
    for c in _NUMBERS:
        if c in frame.columns:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV whose last line is complete: pandas writes a newline after every row, so text
    after the last newline is a row cut short (its number may look whole), and is left out."""
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if not text.strip():
        raise ValueError("cut short before its header")
    return pd.read_csv(io.StringIO(text))


def _checked(frame: pd.DataFrame, bad_rows) -> tuple[pd.DataFrame, set]:
    """The rows of whole cells whose every row is sound, integers as written; and the keys of
    cells with an unsound row (``bad_rows(frame)`` marks them)."""
    keyed = frame[CELL_KEY].notna().all(axis=1).to_numpy()
    frame = frame[keyed]
    bad = np.asarray(bad_rows(frame), dtype=bool)
    ids, keys = _cells(frame)
    damaged = {keys[i] for i in np.unique(ids[bad])}
    keep = ~np.isin(ids, [i for i, k in enumerate(keys) if k in damaged])
    frame = frame[keep].copy()
    for c in _INTEGERS:
        if c in frame.columns:
            frame[c] = frame[c].astype(np.int64)
    return frame.reset_index(drop=True), damaged


def _bad_results(frame: pd.DataFrame) -> np.ndarray:
    """Rows without their cell's numbers or a known metric; cells missing a metric or holding
    one twice."""
    bad = frame[["n_labelled", "method", "kind", "head"]].isna().any(axis=1)
    bad |= ~frame["metric"].isin(METRICS)
    bad |= frame["value"].isna() & (frame["metric"] != "auroc")  # AUROC alone may be NaN
    per_cell = frame.groupby(CELL_KEY, dropna=False)["metric"]
    bad |= per_cell.transform("size") != len(METRICS)
    bad |= per_cell.transform("nunique") != len(METRICS)
    return bad.to_numpy()


def _bad_predictions(frame: pd.DataFrame) -> np.ndarray:
    """Rows without their numbers; cells predicting a sample twice, or missing a sample some
    other cell of the split predicts (a split's cells share its test part)."""
    bad = frame[["test_index", "y_true", "y_pred"]].isna().any(axis=1)
    bad |= frame.duplicated([*CELL_KEY, "test_index"], keep=False)
    predicted = frame.groupby(CELL_KEY, dropna=False)["test_index"].transform("nunique")
    tested = frame.groupby("split")["test_index"].transform("nunique")
    bad |= predicted != tested
    return bad.to_numpy()


def _bad_tuning(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose chosen hyperparameters no longer parse (the attributions refit with them)."""

    def unreadable(text) -> bool:
        try:
            return not isinstance(json.loads(text), dict)
        except (TypeError, ValueError):
            return True

    bad = frame["params"].map(unreadable).astype(bool)
    bad |= frame.duplicated(CELL_KEY, keep=False)
    return bad.to_numpy()


def _cells(frame: pd.DataFrame) -> tuple[np.ndarray, list[tuple]]:
    """Each row's cell number, and each cell's key (one Python key per cell, not per row)."""
    if not len(frame):
        return np.zeros(0, dtype=int), []
    groups = frame.groupby(CELL_KEY, sort=False, dropna=False)
    ids = groups.ngroup().to_numpy()
    keys = [_key(*k) for k in groups.size().index]
    return ids, keys


def _finished(
    frame: pd.DataFrame, ids: np.ndarray, keys: list[tuple], done: set
) -> list[pd.DataFrame]:
    """The rows of finished cells only (as the one-frame list the store appends to)."""
    if not len(frame):
        return []
    keep = np.array([k in done for k in keys], dtype=bool)
    return [frame[keep[ids]]]


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
