"""benchmarks/paper_scale.py end to end at small sizes: the tables, the growth exponents and the
extrapolation come out of real runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "paper_scale.py"


@pytest.fixture(scope="module")
def paper_scale():
    spec = importlib.util.spec_from_file_location("paper_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_scale_runs_small_sizes_and_fits_exponents(paper_scale, tmp_path, capsys):
    out = paper_scale.main(
        [
            "--sizes",
            "60,120",
            "--genes",
            "100",
            "--classes",
            "4",
            "--quick",
            "--jobs",
            "1",
            "--baselines",
            "logreg",
            "--out",
            str(tmp_path),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    rows = out["rows"]
    assert [r["n"] for r in rows] == [60, 120]
    for r in rows:
        assert r["seconds"]["evaluation"] > 0 and r["seconds"]["report"] > 0
        assert r["peak_rss_mb"]["evaluation"] > 50  # the process tree, in MB
        assert set(r["cells"]) == {"logreg", "scarf+linear_probe", "scarf+finetune"}
        assert r["estimate"]["cells"] == 3 * 2  # approaches x fractions, one split and seed
    assert (
        rows[1]["cells"]["logreg"]["labelled_at_top"]
        > rows[0]["cells"]["logreg"]["labelled_at_top"]
    )
    assert all(isinstance(b, float) for b in out["growth"]["approaches"].values())
    printed = capsys.readouterr().out
    assert "growth exponents in n" in printed and "ARCHS4 -> TCGA" in printed
    assert (tmp_path / "r.json").exists() and (tmp_path / "bench_120" / "report.html").exists()


def test_exponent_is_the_log_log_slope(paper_scale):
    assert paper_scale.exponent([10, 100, 1000], [2, 200, 20000]) == pytest.approx(2.0)
    assert paper_scale.exponent([10, 10], [1, 2]) is None
