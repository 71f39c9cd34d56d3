"""The report: files, self-contained HTML, honest verdicts, graceful with missing pieces."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from exprssl.report import headline_table, verdicts, write_report


def _results(ssl_better: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for frac, n in ((0.1, 5), (0.5, 25), (1.0, 50)):
        for seed in range(3):
            for method, kind, head, base in (("scarf", "ssl", "finetune", 0.6), ("vime", "ssl", "linear_probe", 0.5),
                                             ("logreg", "baseline", "logreg", 0.7), ("xgboost", "baseline", "xgboost", 0.55),
                                             ("pca_logreg", "baseline", "pca_logreg", 0.65)):
                v = base + (0.2 if ssl_better and method == "scarf" else 0) + 0.1 * frac + rng.normal(0, 0.01)
                for metric in ("accuracy", "balanced_accuracy", "macro_f1", "auroc"):
                    rows.append({"method": method, "kind": kind, "head": head, "fraction": frac, "n_labelled": n,
                                 "seed": seed, "metric": metric, "value": min(v, 1.0)})
    return pd.DataFrame(rows)


def test_headline_table_is_groupby_mean():
    res = _results(False)
    t = headline_table(res, "balanced_accuracy")
    r = res[res.metric == "balanced_accuracy"]
    expected = r[(r.method == "logreg") & (r.fraction == 0.5)]["value"].mean()
    assert t.loc[(0.5, 25.0), "logreg"] == pytest.approx(expected)
    assert set(t.columns) == {"scarf+finetune", "vime+linear_probe", "logreg", "xgboost", "pca_logreg"}


def test_verdicts_name_the_winner_either_way():
    lose = verdicts(_results(False))
    assert len(lose) == 3
    assert all("best approach is logreg" in v and "SSL does not help here" in v for v in lose)
    win = verdicts(_results(True))
    assert all("best approach is scarf+finetune" in v and "SSL beats the best baseline, logreg" in v for v in win)


def test_write_report_full_and_atomic(tmp_path):
    out = tmp_path / "bench"
    (out / "histories").mkdir(parents=True)
    (out / "embeddings").mkdir()
    (out / "predictions").mkdir()
    _results(False).to_csv(out / "results.csv", index=False)
    pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.2, 1.9],
                  "emb_std": [0.05] * 3, "eff_rank": [10.0, 12.0, 13.0]}).to_csv(out / "histories" / "scarf.csv", index=False)
    rng = np.random.default_rng(0)
    np.savez(out / "embeddings" / "scarf.npz", Z=rng.normal(size=(30, 8)).astype(np.float32),
             labels=np.array(["a", "b", "c"] * 10))
    np.savez(out / "predictions" / "best.npz", y_true=np.array(["a", "b", "a"]), y_pred=np.array(["a", "a", "a"]),
             classes=np.array(["a", "b"]), title=np.array("scarf finetune"))
    (out / "report.md").write_text("old report")
    written = write_report(out)
    for key in ("label_efficiency", "embeddings", "pretraining_loss", "confusion_matrix", "report_md", "report_html"):
        assert written[key].is_file(), key
    for key in ("label_efficiency", "embeddings", "pretraining_loss", "confusion_matrix"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(written[key])
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    md = (out / "report.md").read_text()
    assert md != "old report" and "SSL does not help here" in md and "| approach |" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_missing_pieces_do_not_crash(tmp_path):
    out = tmp_path / "partial"
    out.mkdir()
    _results(True).to_csv(out / "results.csv", index=False)
    written = write_report(out)
    assert "embeddings" not in written and written["label_efficiency"].is_file()
    assert "embeddings.png: no input" in (out / "report.md").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    write_report(empty)
    assert "No results.csv yet" in (empty / "report.md").read_text()
