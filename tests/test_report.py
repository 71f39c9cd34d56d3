"""The report: the answer first, paired verdicts, self-contained HTML, escaped user text, graceful
gaps."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from fake_cells import cell

from exprssl.evaluation.schema import Layout, Manifest
from exprssl.evaluation.stats import summarize
from exprssl.report import answer, md_escape, summary_matrix, write_report

APPROACHES = (
    ("scarf", "ssl", "finetune", 0.6),
    ("vime", "ssl", "linear_probe", 0.5),
    ("logreg", "baseline", "logreg", 0.6),
    ("xgboost", "baseline", "xgboost", 0.5),
    ("random_encoder", "control", "random_encoder", 0.4),
)


def _bench_dir(
    tmp_path, gap: float, classes=("a", "b", "c"), n_test=60, extra=(), given=None, models=None
):
    """What a benchmark leaves behind, with SSL ``gap`` better (or worse) than logistic
    regression; ``extra`` approaches (method, kind, head, accuracy) beside the usual ones,
    ``given`` / ``models``: given models (approach method -> SSL method; manifest entries)."""
    rng = np.random.default_rng(0)
    out = tmp_path / "bench"
    for sub in ("histories", "embeddings", "predictions"):
        (out / sub).mkdir(parents=True)
    res, preds = [], []
    for k in range(3):
        y = rng.integers(0, len(classes), n_test)
        for frac, n in ((0.1, 5), (0.5, 25), (1.0, 50)):
            for seed in range(2):
                for method, kind, head, acc in (*APPROACHES, *extra):
                    acc = acc + gap if (method, head) == ("scarf", "finetune") else acc
                    p = np.where(
                        rng.random(n_test) < min(acc + 0.1 * frac, 1), y, (y + 1) % len(classes)
                    )
                    index = np.arange(n_test) + 100 * k
                    r, pr = cell(k, seed, frac, method, kind, head, n, y, p, index)
                    res.append(r)
                    preds.append(pr)
    summary = summarize(
        pd.DataFrame(res),
        pd.concat(preds),
        metric="balanced_accuracy",
        n_classes=len(classes),
        n_test_per_split=n_test,
        n_boot=300,
        given=given,
    )
    summary.to_csv(Layout(out).summary, index=False)
    manifest = {
        "config": {
            "protocol": "default",
            "main_metric": "balanced_accuracy",
            "min_test_per_class": 3,
        },
        "dataset": {
            "source": "cohort.h5ad",
            "label": "subtype",
            "n_samples": 400,
            "n_genes": 100,
            "classes": {c: 10 for c in classes},
            "dropped_classes": {"tiny": 2},
            "n_without_label": 7,
        },
        "pool": {"size": 250, "parts": {"profiles without the label": 7}},
        "splits": 3,
        "split_sizes": {"test": n_test},
        "merged_fractions": {"1.0": [0.9, 1.0]},
        "seeds": [0, 1],
        "models": models or {},
    }
    (Layout(out).manifest).write_text(json.dumps(manifest))
    pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [3.0, 2.0, 1.5],
            "val_loss": [3.1, 2.2, 1.9],
            "train_mask_bce": [0.7, 0.6, 0.5],
            "train_recon_mse": [1.0, 0.8, 0.7],
            "emb_std": [0.05] * 3,
            "eff_rank": [10.0, 12.0, 13.0],
        }
    ).to_csv(out / "histories" / "vime.csv", index=False)
    np.savez(
        out / "embeddings" / "scarf.npz",
        Z=rng.normal(size=(30, 8)).astype(np.float32),
        labels=np.array(list(classes) * 10),
    )
    np.savez(
        out / "predictions" / "best.npz",
        y_true=np.array(classes[:2] * 2),
        y_pred=np.array(classes[:1] * 4),
        classes=np.array(classes),
        title=np.array("scarf finetune"),
    )
    pd.DataFrame(
        {
            "split": [0, 0],
            "seed": [0, 0],
            "fraction": [0.1, 0.1],
            "approach": ["logreg", "scarf+finetune"],
            "params": ['{"C": 0.1}', '{"lr_scale": 1.0}'],
            "note": ["defaults: class 'a' has 1 labelled sample, too few to cross-validate", ""],
            "seconds": [0.1, 0.2],
        }
    ).to_csv(Layout(out).tuning, index=False)
    return out, summary


def test_answer_first_with_paired_verdicts(tmp_path):
    out, summary = _bench_dir(tmp_path, gap=0.25)
    written = write_report(out)
    md = (out / "report.md").read_text()
    first = md.split("\n## ")[0]
    assert "**SSL pretraining helps**" in first and "beats logreg" in first
    assert (
        "Test set: 60 samples per split, 3 outer splits" in first
        and "Pretraining pool: 250" in first
    )
    assert (
        "tiny: 2" in first
        and "7 profiles without the label" in first
        and "shown once, as 100%" in first
    )
    assert "## Paired comparison" in md and "| SSL better |" in md
    for key in (
        "label_efficiency",
        "paired_differences",
        "embeddings",
        "pretraining_loss",
        "confusion_matrix",
    ):
        img = mpimg.imread(written[key])
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200, key
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "<script" not in html
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_no_winner_named_when_ssl_loses_or_the_cohort_is_too_small(tmp_path):
    out, summary = _bench_dir(tmp_path / "lose", gap=-0.3)
    lines = answer(summary, Manifest.read(out), "balanced_accuracy")
    assert "does not beat supervised learning" in lines[0] and "no labels saved" in lines[1]
    out, summary = _bench_dir(
        tmp_path / "small", gap=0.3, n_test=8
    )  # 8 test samples over 3 classes
    assert (summary.loc[summary["best_ssl"], "verdict"] == "too small for a claim").all()
    write_report(out)
    md = (out / "report.md").read_text()
    assert "too small for a claim" in md and "helps" not in md.split("\n## ")[0]


def test_user_text_is_escaped_in_markdown_and_html(tmp_path):
    evil = ("<script>alert(1)</script>", "![x](http://evil.example/x.png)", "a|b")
    out, _ = _bench_dir(tmp_path, gap=0.0, classes=evil)
    write_report(out)
    md = (out / "report.md").read_text()
    assert "<script>" not in md and "![x](http" not in md and "\\!\\[x\\]\\(http" in md
    html = (out / "report.html").read_text()
    assert "<script" not in html and 'src="http' not in html and "&lt;script&gt;" in html
    assert md_escape("BCR/ABL") == "BCR/ABL"


def test_summary_matrix_is_the_one_table(tmp_path):
    _, summary = _bench_dir(tmp_path, gap=0.1)
    t = summary_matrix(summary, ci=True, bold_best=True)
    assert list(t.columns)[0] == "approach" and list(t.columns)[1:] == [
        "10% (n=5)",
        "50% (n=25)",
        "100% (n=50)",
    ]
    assert list(t["approach"])[:2] == ["scarf+finetune", "vime+linear\\_probe"]
    assert t["approach"].iloc[-1] == "random\\_encoder"  # controls last
    assert t.iloc[0, 1].count("[") == 1 and any("**" in str(v) for v in t.iloc[:, 1])
    plain = summary_matrix(summary, ci=False)
    assert "[" not in plain.iloc[0, 1]


def test_terminal_text_is_the_data_as_written(tmp_path):
    """What the CLI prints: names from the data exactly as they are (no Markdown escapes or
    entities to undo), while report.md keeps them escaped."""
    out, summary = _bench_dir(tmp_path, gap=0.3)
    name = "T&NK_[1]*"
    for col in ("approach", "method", "vs"):
        summary[col] = summary[col].replace("logreg", name)
    text = summary_matrix(summary, ci=False, plain=True)
    assert name in set(text["approach"]) and "random_encoder" in set(text["approach"])
    first = answer(summary, Manifest.read(out), "balanced_accuracy", plain=True)[0]
    assert first.startswith("SSL pretraining helps") and f" beats {name} by " in first
    md = answer(summary, Manifest.read(out), "balanced_accuracy")[0]
    assert md.startswith("**SSL pretraining helps**") and "T&amp;NK\\_\\[1\\]\\*" in md


def test_missing_pieces_do_not_crash(tmp_path):
    out, _ = _bench_dir(tmp_path, gap=0.0)
    (Layout(out).summary).unlink()
    for sub in ("embeddings", "histories"):
        for f in (out / sub).iterdir():
            f.unlink()
    written = write_report(out)
    assert "embeddings" not in written and "No summary.csv yet" in (out / "report.md").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    write_report(empty)
    assert "No summary.csv yet" in (empty / "report.md").read_text()


def test_manifest_round_trips_and_reads_older_or_partial_files(tmp_path):
    """The manifest is written and read through one dataclass; a file of an older release (keys
    gone or added since, null parts) still reads, with defaults where it says nothing."""
    from exprssl.evaluation.schema import AttributionInfo, DatasetInfo, ModelInfo, PoolInfo

    m = Manifest(
        config={"main_metric": "f1_macro"},
        dataset=DatasetInfo(source="x.h5ad", n_samples=3, classes={"a": 2, "b": 1}),
        models={"m": ModelInfo(given="hf://org/m", gene_coverage=0.9)},
        attributions=AttributionInfo(fraction=1.0, by_fraction={"1": ["logreg"]}),
        splits=2,
    )
    m.write(tmp_path / "manifest.json")
    back = Manifest.read(tmp_path)
    assert back == m and back.setting("main_metric") == "f1_macro" and back.found
    old = {"dataset": {"source": "y", "retired": 1}, "pool": None, "gone": 3, "attributions": None}
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    read = Manifest.read(tmp_path / "manifest.json")
    assert read.dataset == DatasetInfo(source="y") and read.pool == PoolInfo()
    assert read.attributions is None and read.models == {} and not read.found
    assert read.setting("main_metric") == "balanced_accuracy"  # BenchmarkConfig's default
    assert Manifest.read(tmp_path / "missing") == Manifest()


# ------------------------------------------------------------------ the rendered text, read back
def _sections(md: str) -> dict[str, str]:
    """report.md by '## ' heading (the first screen under '')."""
    parts = md.split("\n## ")
    return {"": parts[0], **{p.split("\n", 1)[0]: p for p in parts[1:]}}


def _manifest_edit(out, **changes):
    m = json.loads(Layout(out).manifest.read_text())
    m.update(changes)
    Layout(out).manifest.write_text(json.dumps(m))


def test_protocol_pool_tuning_and_class_lines_read_as_sentences(tmp_path):
    """0.3 printed a raw dict on the Protocol line, '(labels unused))', 'defaults: defaults:',
    '2.0 test sample(s)' and numeric classes as '1 9, 2 23'."""
    out, _ = _bench_dir(tmp_path, gap=0.1)
    _manifest_edit(
        out,
        split_sizes={"pretrain": 440, "finetune": 440, "test": 110, "pool": 440},
        pool={
            "size": 473,
            "parts": {
                "labelled training profiles, without their labels": 440,
                "profiles without the label": 33,
            },
        },
        test_per_class={"1": 2.0, "2": 20.0},
        dataset={
            "source": "cohort.h5ad",
            "label": "grade",
            "n_samples": 550,
            "n_genes": 100,
            "classes": {"1": 9, "2": 23},
        },
        full_labels={"mean": 32, "per_class": {"1": 9, "2": 23}, "of": "x"},
    )
    tuning = pd.read_csv(Layout(out).tuning)
    tuning["note"] = [
        "kept the defaults (fewer than two classes have two labelled samples: nothing to "
        "cross-validate)",
        "kept the defaults (fewer than two classes have two labelled samples: nothing to "
        "cross-validate)",
    ]
    tuning.to_csv(Layout(out).tuning, index=False)
    write_report(out)
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    sec = _sections(md)
    protocol = next(line for line in sec[""].splitlines() if line.startswith("**Protocol**"))
    assert "{" not in protocol and "}" not in protocol
    assert (
        "3 outer stratified splits, each a training part of 440 and a test part of 110" in protocol
    )
    assert (
        "Pretraining pool: 473 profiles per split (440 labelled training profiles, without " in md
    )
    assert "))" not in md and "defaults: defaults" not in md and "sample(s)" not in md
    assert "has 2 test samples per split" in md and "2.0 test" not in md
    assert "label `grade`: 1: 9, 2: 23." in md and "= 32 labelled profiles per split" in md
    assert "2 of 2 cells: kept the defaults \\(fewer than two classes" in sec["Tuning"]
    for text in ("a training part of 440 and a test part of 110", "1: 9, 2: 23"):
        assert text in html


def test_plot_styles_tell_every_baseline_and_the_control_apart(tmp_path, monkeypatch):
    """The label-efficiency plot: 0.3 drew the elastic net and the MLP with the same grey dashes,
    and the random encoder (a control) like a baseline."""
    import matplotlib.pyplot as plt

    from exprssl import report

    extra = (
        ("elasticnet", "baseline", "elasticnet", 0.55),
        ("mlp", "baseline", "mlp", 0.52),
        ("pca_logreg", "baseline", "pca_logreg", 0.5),
    )
    _, summary = _bench_dir(tmp_path, gap=0.1, extra=extra)
    captured = {}
    monkeypatch.setattr(report.plots, "_savefig", lambda fig, path: captured.setdefault("fig", fig))
    report.plot_label_efficiency(summary, "balanced_accuracy", tmp_path / "x.png")
    lines = {ln.get_label(): ln for ln in captured["fig"].axes[0].get_lines()}
    plt.close(captured["fig"])
    baselines = [lines[b] for b in ("logreg", "xgboost", "elasticnet", "mlp", "pca_logreg")]
    looks = {(ln.get_color(), str(ln.get_linestyle()), ln.get_marker()) for ln in baselines}
    assert len(looks) == len(baselines)
    assert len({(ln.get_color(), ln.get_marker()) for ln in baselines}) == len(baselines)
    control = lines["random_encoder (control)"]
    assert control.get_linestyle() == ":" and control.get_marker() == "x"
    assert "random_encoder" not in lines
    assert all(ln.get_linestyle() == "-" for name, ln in lines.items() if "+" in name)


def test_flags_are_summarised_first_and_detailed_in_their_section(tmp_path):
    always_one_class = (("barlow", "ssl", "finetune", 0.0),)  # acc 0: always (y + 1) % 3
    out, summary = _bench_dir(tmp_path, gap=0.1, extra=always_one_class)
    p = pd.read_csv(Layout(out).summary)
    p.loc[p["approach"] == "barlow+finetune", ["degenerate", "collapsed", "excluded"]] = [
        "predictions collapsed to one class in 6 of 6 cells",
        1.0,
        True,
    ]
    at_10 = (p["approach"] == "vime+linear_probe") & (p["fraction"] == 0.1)
    p.loc[at_10, ["degenerate", "collapsed", "excluded"]] = [
        "predictions collapsed to one class in 3 of 6 cells",
        0.5,
        False,
    ]
    p.to_csv(Layout(out).summary, index=False)
    write_report(out)
    md = (out / "report.md").read_text()
    first = _sections(md)[""]
    flag_lines = [line for line in first.splitlines() if line.startswith(("- Flagged", "- Left"))]
    assert flag_lines == [
        "- Flagged as degenerate (collapsed predictions or chance; details under Degenerate "
        "approaches): "
        "vime+linear\\_probe (10%), barlow+finetune (10%, 50%, 100%).",
        "- Left out of the best for it: barlow+finetune (10%, 50%, 100%); the others stay "
        "eligible (their collapsed cells only lowered their means).",
    ] or flag_lines == [
        "- Flagged as degenerate (collapsed predictions or chance; details under Degenerate "
        "approaches): "
        "barlow+finetune (10%, 50%, 100%), vime+linear\\_probe (10%).",
        "- Left out of the best for it: barlow+finetune (10%, 50%, 100%); the others stay "
        "eligible (their collapsed cells only lowered their means).",
    ]
    order = [h.split("\n")[0] for h in md.split("\n## ")[1:]]
    comparison = "Paired comparison: best SSL approach minus best baseline"
    assert order.index(comparison) < order.index("Degenerate approaches")
    table = _sections(md)["Degenerate approaches"]
    assert (
        "| 100% (n=50) | barlow+finetune |" in table and "| 100% | predictions collapsed" in table
    )


def test_transfer_gets_its_comparison_and_the_answer_names_the_model(tmp_path):
    models = {
        "compendium": {
            "given": "hf://org/compendium",
            "method": "scarf",
            "data_sources": [{"name": "archs4.h5ad", "n_profiles": 53282}],
        }
    }
    extra = (
        ("compendium", "ssl", "finetune", 0.95),
        ("compendium", "ssl", "linear_probe", 0.5),
        ("mlp", "baseline", "mlp", 0.6),
    )
    out, summary = _bench_dir(
        tmp_path, gap=0.0, extra=extra, given={"compendium": "scarf"}, models=models
    )
    row = summary.set_index(["approach", "fraction"]).loc[("compendium+finetune", 1.0)]
    assert row["vs_in_cohort"] == "scarf+finetune" and row["verdict_in_cohort"] == "transfer better"
    assert row["vs_no_pretraining"] == "mlp" and row["diff_no_pretraining_lo"] > 0
    assert row["best_ssl"]
    write_report(out)
    md = (out / "report.md").read_text()
    first = _sections(md)[""]
    assert (
        "compendium+finetune (a given model, pretrained on archs4.h5ad (53,282 profiles)) beats"
        in first
    )
    assert (
        "**Transfer**: compendium (pretrained on archs4.h5ad (53,282 profiles)) against scarf "
        "pretrained on this cohort: **mixed**"
        in first
        or "**helped**" in first
    )
    section = _sections(md)["Transfer: given models against in-cohort pretraining and none"]
    assert "| 100% (n=50) | compendium+finetune | scarf+finetune |" in section
    assert "transfer better" in section and "| random\\_encoder |" in section
    text = answer(summary, Manifest.read(out), "balanced_accuracy", plain=True)
    assert any(t.startswith("Transfer: compendium (pretrained on archs4.h5ad") for t in text)


# ------------------------------------------------------------ plots beside tables, contents, pages
def _attributions(classes=("a", "b", "c"), n_genes=30, splits=2, fraction=1.0):
    """An attributions table: per class its own 5 strong genes (g{5c}..), in every split; the
    SSL approach and logreg share the first 3 of them."""
    from exprssl.attributions import attribution_table

    rng = np.random.default_rng(1)
    genes = [f"g{i}" for i in range(n_genes)]
    parts = []
    for split in range(splits):
        for approach, shared in (("scarf+finetune", 5), ("logreg", 3)):
            values = rng.normal(0, 0.05, (len(classes), n_genes))
            for c in range(len(classes)):
                values[c, 5 * c : 5 * c + shared] = np.linspace(2.0, 1.0, shared) + 0.1 * split
            parts.append(attribution_table(values, genes, classes, approach, split, fraction))
    return pd.concat(parts, ignore_index=True)


def test_each_plot_sits_beside_its_table_under_a_table_of_contents(tmp_path):
    out, _ = _bench_dir(tmp_path, gap=0.2)
    _attributions().to_csv(Layout(out).attributions, index=False)
    _manifest_edit(
        out,
        attributions={
            "fraction": 1.0,
            "approaches": ["scarf+finetune", "logreg"],
            "reference": "logreg",
        },
    )
    written = write_report(out)
    for key in ("attribution_genes", "attribution_stability"):
        img = mpimg.imread(written[key])
        assert img.ndim == 3 and img.shape[0] > 150 and img.shape[1] > 300, key
    md = (out / "report.md").read_text()
    sec = _sections(md)
    assert "## Plots" not in md
    links = [line for line in sec[""].splitlines() if line.startswith("- [")]
    assert [line.split("](#")[0][3:] for line in links] == list(sec)[1:]  # every section, in order
    assert "- [Genes carrying the prediction](#genes-carrying-the-prediction)" in links
    # the plot right after the table it illustrates
    for title, image in (
        ("Balanced accuracy on the test set", "label_efficiency"),
        ("Paired comparison", "paired_differences"),
        ("Genes carrying the prediction", "attribution_genes"),
    ):
        body = next(v for k, v in sec.items() if k.startswith(title))
        table_end = body.rindex("|\n")
        assert body[table_end:].lstrip("|\n").startswith(f"![{image}]({image}.png)"), title
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 7 and html.count('<div class="beside">') == 3
    assert '<a href="#genes-carrying-the-prediction">' in html
    assert '<h2 id="genes-carrying-the-prediction">' in html
    assert "default-src 'none'" in html and "http://" not in html and "https://" not in html


def test_the_top_genes_plot_draws_the_attributions_it_reads():
    """Bars: mean |attribution| over splits relative to the class's first gene, best first; dark
    where the reference also ranks the gene in its top k."""
    from exprssl.attributions import stability
    from exprssl.report.plots import attribution_genes_figure, attribution_stability_figure

    table = _attributions()
    fig = attribution_genes_figure(table, "scarf+finetune", "logreg", k=3, shown=5)
    ax = fig.axes[1]  # class "b": genes g5..g9
    top_down = sorted(zip(ax.get_yticks(), ax.get_yticklabels(), strict=True), reverse=True)
    assert [t.get_text() for _, t in top_down] == ["g5", "g6", "g7", "g8", "g9"]  # best on top
    bars = sorted(ax.patches, key=lambda p: -p.get_y())
    widths = [p.get_width() for p in bars]
    assert widths[0] == pytest.approx(1.0) and widths[4] == pytest.approx(1.05 / 2.05, abs=0.03)
    dark = [p.get_facecolor()[:3] for p in bars]
    assert dark[0] == dark[2] != dark[3]  # g5-g7 in logreg's top 3, g8 not
    assert len(ax.get_lines()) == 2  # a dot series per split
    stable = attribution_stability_figure(table, k=5)
    expected = stability(table, 5).set_index(["approach", "class"])
    rho = stable.axes[0].get_lines()[0].get_ydata()  # logreg (approaches by name)
    assert np.allclose(rho, expected.loc["logreg", "spearman"])
    jaccard = stable.axes[1].get_lines()[1].get_ydata()  # scarf+finetune: its 5 genes every split
    assert np.allclose(jaccard, 1.0)
    assert attribution_stability_figure(table[table["split"] == 0]) is None  # one split


def test_explain_page_is_self_contained_and_refuses_a_users_file(tmp_path):
    from exprssl.errors import OutputPathError
    from exprssl.report.explain_page import check_page_output, page_path, write_explain_page

    evil = "<img src=x onerror=alert(1)>"
    table = _attributions(classes=("a", evil))
    page = page_path(tmp_path / "attributions.csv")
    assert page.name == "attributions.html"
    write_explain_page(table, page, title=f"exprssl explain: m — {evil}", k=3)
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 2 and "<script" not in html
    assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "http://" not in html and "https://" not in html
    with pytest.raises(OutputPathError, match="--overwrite"):
        check_page_output(page)
    assert check_page_output(page, overwrite=True) == page
    mine = tmp_path / "mine.html"
    mine.write_text("<p>my notes</p>")
    with pytest.raises(OutputPathError, match="never replaces"):
        check_page_output(mine, overwrite=True)
    assert mine.read_text() == "<p>my notes</p>"


def test_a_saved_model_carries_its_loss_curve_and_explain_writes_a_page(tmp_path):
    from typer.testing import CliRunner

    from exprssl import SSLModel
    from exprssl.card import read_card
    from exprssl.cli import app
    from exprssl.datasets import synthetic
    from exprssl.io import write_h5ad

    a = synthetic(60, 40, 2, seed=0)
    data = tmp_path / "cohort.h5ad"
    write_h5ad(a, data)
    model = tmp_path / "model"
    m = SSLModel("scarf", epochs=3, progress=False, method_params={"hidden_dims": [16]}).fit(a)
    m.save(model)
    img = mpimg.imread(model / "loss.png")
    assert img.ndim == 3 and img.shape[0] > 150 and img.shape[1] > 250
    assert "loss.png" in read_card(model)["files_sha256"]  # hashed like the model's other files
    assert SSLModel.load(model).history_["epoch"].tolist() == [1, 2, 3]
    r = CliRunner().invoke(
        app,
        [
            "explain",
            "--model",
            str(model),
            "--data",
            str(data),
            "--label",
            "label",
            "--out",
            str(tmp_path / "why"),
            "--splits",
            "2",
            "--top",
            "5",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    t = pd.read_csv(tmp_path / "why" / "attributions.csv")
    assert len(t) == 40 * 2 * 2 * 2  # genes x classes x approaches x splits
    html = (tmp_path / "why" / "attributions.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "logreg" in html
