"""The benchmark's result files, owned by the parent process: written atomically, read on resume.

- ``results.csv``: one row per cell and metric (split, approach, fraction, seed);
- ``predictions.parquet``: one row per cell and test sample (its predicted class), what the
  paired bootstrap resamples;
- ``tuning.csv``: the hyperparameters each cell chose by inner CV, and why defaults were kept.

``results.csv`` is written last: a cell counts as done only when it is there and its
predictions are too, so a run killed between two writes recomputes that cell on resume.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import atomic_path, atomic_write_text
from .cells import Approach, CellOutcome

RESULT_COLUMNS = ["split", "method", "kind", "head", "fraction", "n_labelled", "seed", "metric", "value"]
PREDICTION_COLUMNS = ["split", "seed", "fraction", "approach", "test_index", "y_true", "y_pred"]
TUNING_COLUMNS = ["split", "seed", "fraction", "approach", "params", "note", "seconds"]


def _key(split, approach: str, fraction, seed) -> tuple:
    return int(split), str(approach), round(float(fraction), 6), int(seed)


class ResultStore:
    def __init__(self, out: Path):
        self.out = Path(out)
        paths = self._paths()
        results = pd.read_csv(paths["results"]) if paths["results"].exists() else pd.DataFrame(columns=RESULT_COLUMNS)
        preds = (pd.read_parquet(paths["predictions"]) if paths["predictions"].exists()
                 else pd.DataFrame(columns=PREDICTION_COLUMNS))
        tuning = pd.read_csv(paths["tuning"]) if paths["tuning"].exists() else pd.DataFrame(columns=TUNING_COLUMNS)
        names = np.where(results["kind"] == "ssl", results["method"] + "+" + results["head"], results["method"])
        in_results = {_key(*r) for r in zip(results["split"], names, results["fraction"], results["seed"], strict=True)}
        in_preds = {_key(*r) for r in preds[["split", "approach", "fraction", "seed"]].drop_duplicates()
                    .itertuples(index=False)}
        self.done = in_results & in_preds
        keep = [_key(*r) in self.done for r in zip(results["split"], names, results["fraction"], results["seed"],
                                                    strict=True)]
        self._results = [results[keep]] if len(results) else []
        self._preds = [preds] if len(preds) else []
        self._tuning = [tuning] if len(tuning) else []
        self._dirty = False

    def _paths(self) -> dict[str, Path]:
        return {"results": self.out / "results.csv", "predictions": self.out / "predictions.parquet",
                "tuning": self.out / "tuning.csv"}

    def has(self, split: int, approach: Approach, fraction: float, seed: int) -> bool:
        return _key(split, approach.name, fraction, seed) in self.done

    def add(self, outcomes: list[CellOutcome]) -> None:
        for o in outcomes:
            a = o.approach
            self._results.append(pd.DataFrame(
                [{"split": o.split, "method": a.method, "kind": a.kind, "head": a.head, "fraction": o.fraction,
                  "n_labelled": o.n_labelled, "seed": o.seed, "metric": k, "value": v} for k, v in o.scores.items()],
                columns=RESULT_COLUMNS))
            self._preds.append(pd.DataFrame({
                "split": o.split, "seed": o.seed, "fraction": o.fraction, "approach": a.name,
                "test_index": o.test_index, "y_true": o.y_true, "y_pred": o.y_pred}, columns=PREDICTION_COLUMNS))
            self._tuning.append(pd.DataFrame([{"split": o.split, "seed": o.seed, "fraction": o.fraction,
                                               "approach": a.name, "params": json.dumps(o.params, default=str),
                                               "note": o.note, "seconds": round(o.seconds, 3)}],
                                             columns=TUNING_COLUMNS))
            self.done.add(_key(o.split, a.name, o.fraction, o.seed))
        self._dirty = bool(outcomes) or self._dirty

    def results(self) -> pd.DataFrame:
        """Every finished cell, in a stable order (split, method, head, fraction, seed)."""
        order = ["split", "method", "head", "fraction", "seed"]
        self._results = [_concat(self._results, RESULT_COLUMNS).sort_values(order, kind="stable", ignore_index=True)]
        return self._results[0]

    def predictions(self) -> pd.DataFrame:
        self._preds = [_concat(self._preds, PREDICTION_COLUMNS)]
        return self._preds[0]

    def tuning(self) -> pd.DataFrame:
        self._tuning = [_concat(self._tuning, TUNING_COLUMNS)]
        return self._tuning[0]

    def flush(self) -> None:
        if not self._dirty:
            return
        paths = self._paths()
        with atomic_path(paths["predictions"]) as tmp:
            self.predictions().to_parquet(tmp, index=False)
        atomic_write_text(paths["tuning"], self.tuning().to_csv(index=False))
        atomic_write_text(paths["results"], self.results().to_csv(index=False))
        self._dirty = False


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
