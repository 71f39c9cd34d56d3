"""Finished benchmark cells made by hand, for tests of what reads them (summary, report)."""

from __future__ import annotations

import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from exprssl.evaluation.schema import approach_name


def cell(split, seed, fraction, method, kind, head, n_labelled, y, y_pred, test_index):
    """One cell as the runner records it: its ``results.csv`` row (balanced accuracy) and its
    ``predictions.parquet`` rows."""
    result = {
        "split": split,
        "method": method,
        "kind": kind,
        "head": head,
        "fraction": fraction,
        "n_labelled": n_labelled,
        "seed": seed,
        "metric": "balanced_accuracy",
        "value": balanced_accuracy_score(y, y_pred),
    }
    predictions = pd.DataFrame(
        {
            "split": split,
            "seed": seed,
            "fraction": fraction,
            "approach": approach_name(method, kind, head),
            "test_index": test_index,
            "y_true": y,
            "y_pred": y_pred,
        }
    )
    return result, predictions
