"""The benchmark's result files, owned by the parent process: written atomically, read on resume.

- ``results.csv``: one row per cell and metric (split, approach, fraction, seed);
- ``predictions.parquet``: one row per cell and test sample (its predicted class), what the
  paired bootstrap resamples;
- ``tuning.csv``: the hyperparameters each cell chose by inner CV, and why defaults were kept.

A cell counts as done only when its results and its predictions are both on disk; on reading,
every file keeps the rows of finished cells only, so a run killed between two writes recomputes
that cell on resume and no file holds it twice (the paired comparison needs each once).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import atomic_path, atomic_write_text
from .cells import Approach, CellOutcome
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


class ResultStore:
    """The parent's record of finished cells. A cell counts as done only when both its results
    and its predictions are on disk: on reading, rows of any other cell (a run killed between
    two writes) are dropped from every file, so a resumed run recomputes that cell once and the
    files never hold it twice."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.layout = Layout(self.out)
        results = _read(self.layout.results, RESULT_COLUMNS, pd.read_csv)
        preds = _read(self.layout.predictions, PREDICTION_COLUMNS, pd.read_parquet)
        tuning = _read(self.layout.tuning, TUNING_COLUMNS, pd.read_csv)
        results = results.assign(approach=approach_names(results))
        cells = [_cells(f) for f in (results, preds, tuning)]
        self.done = set(cells[0][1]) & set(cells[1][1])
        self._results, self._preds, self._tuning = (
            _finished(f, ids, keys, self.done)
            for f, (ids, keys) in zip(
                (results.drop(columns="approach"), preds, tuning), cells, strict=True
            )
        )
        self._dirty = False

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


def _read(path: Path, columns: list[str], reader) -> pd.DataFrame:
    return reader(path) if path.exists() else pd.DataFrame(columns=columns)


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
