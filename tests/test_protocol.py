"""The staged benchmark on a tiny cohort: files, pools, leakage, cells, paired summary, resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from exprssl.datasets import synthetic
from exprssl.errors import ConfigError, LabelColumnError, OutputPathError
from exprssl.evaluation.protocol import (
    BenchmarkConfig,
    load_cohort,
    plan_benchmark,
    resolve_config,
    run_benchmark,
)
from exprssl.evaluation.results import RESULT_COLUMNS
from exprssl.evaluation.schema import GENES, PCA_SCORES, POOL, FeatureKey, Layout, Manifest
from exprssl.io import write_h5ad

BASELINES = [
    "logreg",
    "xgboost",
    "mlp",
    "pca_logreg",
    "elasticnet",
    "random_encoder",
]  # the defaults
METHODS = ["scarf", "vime"]
N_UNLABELED = 30


def _cohort(seed=0):
    a = synthetic(240, 150, 3, seed=seed, n_informative=60, module_size=10)
    a.obs["label"] = a.obs["label"].astype(object)
    a.obs.loc[a.obs_names[:N_UNLABELED], "label"] = np.nan  # profiles without the label
    return a


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("d") / "syn.h5ad"
    write_h5ad(_cohort(), p)
    return p


def _cfg(data_file, out, **kw):
    base = dict(
        data=str(data_file),
        label="label",
        out=str(out),
        methods=METHODS,
        seeds=2,
        splits=2,
        fractions=[0.1, 0.5, 1.0],
        epochs=2,
        batch_size=32,
        encoder={"hidden_dims": [32, 32], "dropout": 0.1},
        finetune={"epochs": 5, "batch_size": 16, "patience": 3},
        bootstrap=200,
        jobs=1,
    )
    base.update(kw)
    return BenchmarkConfig(**base)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, data_file):
    out = tmp_path_factory.mktemp("bench") / "b"
    run = run_benchmark(_cfg(data_file, out, jobs=2), progress=False)  # worker processes
    return out, run


def test_every_file_written(bench):
    out, run = bench
    for f in (
        "results.csv",
        "summary.csv",
        "predictions.parquet",
        "tuning.csv",
        "manifest.json",
        "splits.json",
        "settings.json",
        "predictions/best.npz",
    ):
        assert (out / f).is_file(), f
    for k in (0, 1):
        for m in METHODS:
            assert (out / "models" / f"split{k}" / m / "weights.safetensors").is_file()
    on_disk = json.loads((out / "manifest.json").read_text())
    assert set(on_disk) == {f.name for f in dataclasses.fields(Manifest)}  # written through it
    manifest = Manifest.read(out)
    assert manifest == run.manifest  # what the run returned is what it wrote
    assert manifest.splits == 2 and manifest.jobs == 2 and manifest.dataset.n_samples == 240
    assert manifest.versions["exprssl"] and manifest.timings_s["total"] > 0


def test_unlabeled_profiles_pool_and_no_test_profile_leaks(bench):
    out, _ = bench
    splits = json.loads((Layout(out).splits).read_text())
    unlabeled = set(range(N_UNLABELED))  # the first profiles have no label
    for s in splits.values():
        pre, ft, test, pool = (set(s[k]) for k in ("pretrain", "finetune", "test", "pool"))
        assert pool == ft | unlabeled  # every non-test profile pretrains
        assert pre == ft and len(ft) + len(test) == 240 - N_UNLABELED  # every label: test or 100%
        assert not test & pool and not test & ft
        assert not unlabeled & (ft | test)  # ... and never fine-tunes or tests
    assert splits["0"]["test"] != splits["1"]["test"]  # independent outer splits
    pool = Manifest.read(out).pool
    assert pool.parts["profiles without the label"] == N_UNLABELED
    assert pool.size == len(splits["0"]["pool"])


def test_cells_cover_splits_seeds_fractions_and_approaches(bench):
    _, run = bench
    res = run.results
    assert list(res.columns) == RESULT_COLUMNS
    assert set(res["metric"]) == {"accuracy", "balanced_accuracy", "macro_f1", "auroc"}
    cells = res.groupby(["split", "method", "head", "fraction", "seed"]).size()
    assert len(cells) == 2 * 2 * 3 * (len(METHODS) * 2 + len(BASELINES)) and (cells == 4).all()
    assert res["value"].between(0, 1).all()
    assert set(res.loc[res["method"] == "random_encoder", "kind"]) == {"control"}


def test_summary_pairs_best_ssl_with_best_baseline(bench):
    out, run = bench
    s = pd.read_csv(Layout(out).summary)
    assert len(s) == 3 * (len(METHODS) * 2 + len(BASELINES))
    best = s[s["best_ssl"]]
    assert (
        len(best) == 3
        and best["verdict"].isin(["SSL better", "SSL worse", "no detectable difference"]).all()
    )
    assert (best["diff_lo"] <= best["diff"]).all() and (best["diff"] <= best["diff_hi"]).all()
    assert not s.loc[s["best_baseline"], "approach"].eq("random_encoder").any()
    r = run.results[
        (run.results["metric"] == "balanced_accuracy") & (run.results["method"] == "logreg")
    ]
    assert s.loc[(s["approach"] == "logreg") & (s["fraction"] == 1.0), "mean"].iloc[
        0
    ] == pytest.approx(r[r["fraction"] == 1.0]["value"].mean())


def test_tuning_recorded_per_cell(bench):
    out, _ = bench
    t = pd.read_csv(Layout(out).tuning)
    assert len(t) == 2 * 2 * 3 * (len(METHODS) * 2 + len(BASELINES))
    chosen = t[t["approach"] == "logreg"]["params"].map(json.loads)
    assert all(set(p) == {"C"} for p in chosen)
    ft = t[t["approach"] == "scarf+finetune"]["params"].map(json.loads)
    assert all(set(p) == {"lr_scale"} for p in ft)


def test_rerun_resumes_without_recomputing(bench, data_file, monkeypatch):
    out, run = bench
    import exprssl.evaluation.runner as proto

    def no_training(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(proto, "evaluate_group", no_training)
    monkeypatch.setattr(proto, "pretrain_one", no_training)
    import exprssl.evaluation.attribution_stage as attribution_stage

    monkeypatch.setattr(
        attribution_stage, "explain_split", no_training
    )  # attributions.csv complete
    again = run_benchmark(_cfg(data_file, out), progress=False)
    pd.testing.assert_frame_equal(
        again.results.reset_index(drop=True), run.results.reset_index(drop=True)
    )


def test_resume_refuses_other_settings_and_changed_data(bench, data_file, tmp_path):
    out, _ = bench
    before = (Layout(out).results).read_bytes()
    with pytest.raises(ConfigError, match=r"other settings \(epochs: 2 -> 3\)"):
        run_benchmark(_cfg(data_file, out, epochs=3), progress=False)
    changed = _cohort()
    changed.X[40, 3] += 1.0  # one value of one profile
    p = tmp_path / "syn.h5ad"
    write_h5ad(changed, p)
    with pytest.raises(ConfigError, match="contents changed: data"):
        run_benchmark(_cfg(p, out), progress=False)
    assert (Layout(out).results).read_bytes() == before  # nothing touched


def test_more_seeds_add_cells(tmp_path, data_file):
    out = tmp_path / "grow"
    small = dict(methods=["scarf"], baselines=["logreg"], fractions=[1.0], splits=1)
    first = run_benchmark(
        _cfg(data_file, out, seeds=1, attributions=False, **small), progress=False
    )
    assert not (Layout(out).attributions).exists() and first.manifest.attributions is None
    grown = run_benchmark(
        _cfg(data_file, out, seeds=2, **small), progress=False
    )  # attributions: a resumable option
    assert (Layout(out).attributions).is_file()
    assert set(first.results["seed"]) == {0} and set(grown.results["seed"]) == {0, 1}
    kept = grown.results[grown.results["seed"] == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, first.results.reset_index(drop=True), check_dtype=False)


def test_rejected_run_writes_nothing(tmp_path, data_file):
    out = tmp_path / "r"
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1"):
        run_benchmark(_cfg(data_file, out, epochs=-1), progress=False)
    assert not out.exists()
    with pytest.raises(LabelColumnError, match="label column 'subtype' not found"):
        run_benchmark(_cfg(data_file, out, label="subtype"), progress=False)
    assert not out.exists()


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"fractions": [0.5, 1.5]}, "1.5 is outside"),
        ({"methods": ["scarf", "simclr"]}, "unknown method 'simclr'"),
        ({"seeds": "abc"}, "seeds must be an integer"),
        ({"splits": 0}, "splits must be an integer >= 1"),
        (
            {"finetune": {"lr": -1}},
            "finetune: lr must be a finite number > 0",
        ),  # used to train silently
        (
            {"finetune": {"epochs": "abc"}},
            "finetune: epochs must be an integer",
        ),  # used to be a late TypeError
        (
            {"preprocessing": {"top_k_variance": 0}},
            "top_k_variance must be an integer >= 1",
        ),  # after writing
        ({"preprocessing": {"top_genes": 5}}, "unknown preprocessing option"),
        (
            {"split": {"pretrain": 0.6, "finetune": 0.2, "test": 0.2}},
            "split must be a mapping of train, test to fractions summing to 1 \\(the default "
            "protocol's",
        ),
        (
            {"protocol": "paper", "split": {"train": 0.8, "test": 0.2}},
            "split must be a mapping of pretrain, finetune, test",
        ),
        ({"min_test_per_class": -1}, "min_test_per_class must be a finite number >= 0"),
    ],
)
def test_bad_options_fail_before_anything_is_written(tmp_path, data_file, kw, msg):
    with pytest.raises(ConfigError, match=msg):
        run_benchmark(_cfg(data_file, tmp_path / "o", **kw), progress=False)
    assert not (tmp_path / "o").exists()


def test_output_that_is_not_a_benchmark_is_refused(tmp_path, data_file):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(OutputPathError, match="not an exprssl benchmark directory"):
        run_benchmark(_cfg(data_file, mine), progress=False)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    with pytest.raises(OutputPathError, match="not an exprssl benchmark directory"):
        run_benchmark(_cfg(data_file, mine / "notes.txt"), progress=False)


def test_rare_classes_only_pretrain_and_fractions_that_repeat_are_merged(tmp_path):
    a = synthetic(60, 80, 3, seed=1, n_informative=40, module_size=10)
    a.obs["label"] = a.obs["label"].astype(object)
    a.obs.loc[a.obs_names[:2], "label"] = "rare"
    p = tmp_path / "small.h5ad"
    write_h5ad(a, p)
    cfg = resolve_config(
        _cfg(p, tmp_path / "o", min_class_size=5, fractions=[0.5, 0.6, 0.97, 1.0]), 58
    )
    cohort = load_cohort(cfg)
    plan = plan_benchmark(cfg, cohort)
    assert cohort.dropped == {"rare": 2} and set(plan.splits[0].pool) >= {0, 1}
    # per class ~15 training samples: 0.97 and 1.0 label all of them, so they are one column
    assert 1.0 in plan.fractions and 0.97 not in plan.fractions and plan.merged[1.0] == [0.97, 1.0]


def test_pretrain_data_adds_to_the_pool_and_transductive_adds_the_test_profiles(
    tmp_path, data_file, caplog
):
    other = synthetic(50, 150, 3, seed=9, n_informative=60, module_size=10)
    other.obs_names = [f"other_{i}" for i in range(50)]  # not the cohort's samples (sample_<i>)
    keep = np.random.default_rng(0).permutation(150)[:120]  # shuffled order, 30 genes missing
    extra = tmp_path / "extra.h5ad"
    write_h5ad(other[:, keep].copy(), extra)
    cfg = resolve_config(
        _cfg(data_file, tmp_path / "o", pretrain_data=[str(extra)], transductive=True), 210
    )
    with caplog.at_level("INFO", logger="exprssl"):
        cohort = load_cohort(cfg)
    said = [r.getMessage() for r in caplog.records if "reference genes present" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"pretraining data {extra}: 120 of 150")
    caplog.clear()
    assert cohort.adata.n_vars == 120 and cohort.sources[0][1].n_obs == 50
    assert cohort.sources[0][2] == pytest.approx(0.8)
    plan = plan_benchmark(cfg, cohort)
    s = plan.splits[0]
    assert set(s.test) <= set(s.pool) and set(s.finetune) <= set(s.pool)


def test_paper_protocol_is_a_preset_with_0_2s_disjoint_split(tmp_path, data_file):
    from exprssl.evaluation.protocol import paper_preset

    cfg = _cfg(data_file, tmp_path / "p", protocol="paper", splits=None)
    preset = paper_preset(cfg)
    assert preset is not cfg and cfg.split is None
    assert preset.split == {"pretrain": 0.6, "finetune": 0.2, "test": 0.2}
    assert preset.main_metric == cfg.main_metric and preset.splits is None
    run = run_benchmark(
        _cfg(
            data_file,
            tmp_path / "p",
            protocol="paper",
            methods=["scarf"],
            baselines=["logreg"],
            fractions=[1.0],
            seeds=1,
            splits=1,
        ),
        progress=False,
    )
    splits = json.loads((Layout(tmp_path / "p").splits).read_text())["0"]
    pre, ft, test, pool = (set(splits[k]) for k in ("pretrain", "finetune", "test", "pool"))
    assert (
        not pre & ft and not pre & test and not ft & test and pool == pre | set(range(N_UNLABELED))
    )
    assert (len(pre), len(ft), len(test)) == pytest.approx(
        (126, 42, 42), abs=2
    )  # 0.6 / 0.2 / 0.2 of 210
    assert run.manifest.full_labels.mean == len(ft)


def test_config_unknown_key():
    with pytest.raises(ConfigError, match="unknown benchmark option.*epoch_count"):
        BenchmarkConfig.from_dict({"data": "x", "label": "y", "epoch_count": 3})


def test_runner_is_short_stages_and_evaluation_never_imports_the_report():
    import ast
    from pathlib import Path

    import exprssl.evaluation as evaluation

    for f in Path(evaluation.__file__).parent.glob("*.py"):
        tree = ast.parse(f.read_text())
        long = [
            n.name
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno >= 60
        ]
        assert not long, (f.name, long)
        imported = [
            getattr(n, "module", None) or ""
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom)
        ]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m.endswith("report")], (f.name, imported)


def test_results_do_not_depend_on_the_number_of_worker_processes(bench, data_file, tmp_path):
    """Each cell is seeded by its own (split, seed, fraction): inline or in workers, the same
    numbers."""
    _, run = bench
    inline = run_benchmark(_cfg(data_file, tmp_path / "inline", jobs=1), progress=False)
    pd.testing.assert_frame_equal(inline.results, run.results)


def test_two_class_labels_run_every_baseline(tmp_path):
    """Tumour vs normal, IDC vs ILC: binary labels are the commonest task. XGBoost's early
    stopping used the multiclass metric and failed on them (found on TCGA BRCA miRNA)."""
    a = synthetic(120, 80, 2, seed=3, n_informative=30, module_size=10)
    path = tmp_path / "binary.h5ad"
    write_h5ad(a, path)
    run = run_benchmark(
        _cfg(path, tmp_path / "b", methods=["scarf"], splits=1, seeds=1, fractions=[0.3, 1.0]),
        progress=False,
    )
    scores = run.results[run.results["metric"] == "balanced_accuracy"]
    assert set(BASELINES) <= set(scores["method"])
    xgb = scores[scores["method"] == "xgboost"]["value"]
    assert len(xgb) == 2 and xgb.between(0, 1).all()
    assert run.summary["verdict"].notna().any()


def test_one_split_gets_three_seeds_by_default(data_file):
    """With one split the interval rests on its label subsets: three of them unless the user
    says."""
    cohort = load_cohort(_cfg(data_file, "unused"))
    n = len(cohort.labelled)
    assert resolve_config(_cfg(data_file, "o", seeds=None, splits=1), n).seeds == 3
    assert resolve_config(_cfg(data_file, "o", seeds=None, splits=None), n).seeds == 2  # 5 splits
    assert (
        resolve_config(_cfg(data_file, "o", seeds=None, splits=3, pretrain_seeds=4), n).seeds == 4
    )
    assert resolve_config(_cfg(data_file, "o", seeds=2, splits=1), n).seeds == 2


def test_attributions_written_after_a_benchmark_and_reported(bench):
    """attributions.csv: every gene x class for each explained approach (the best SSL approach,
    the best baseline, the best linear baseline) and split; the report shows them."""
    from exprssl.attributions import COLUMNS
    from exprssl.report import write_report

    out, run = bench
    info = run.manifest.attributions
    t = pd.read_csv(Layout(out).attributions)
    assert list(t.columns) == COLUMNS and info.fraction == 1.0
    assert sorted(set(t["fraction"])) == info.fractions == [0.1, 0.5, 1.0]  # every fraction
    for f, part in t.groupby("fraction"):
        s = run.summary[np.isclose(run.summary["fraction"], f)]
        best = {s.loc[s[c], "approach"].iloc[0] for c in ("best_ssl", "best_baseline")}
        assert best - {"xgboost"} <= set(info.by_fraction[f"{f:g}"]) == set(part["approach"])
    assert info.reference in {"elasticnet", "logreg", "pca_logreg"} and info.reference in set(
        t.loc[t["fraction"] == 1.0, "approach"]
    )
    keys = ["approach", "fraction", "split", "class"]
    sizes = t.groupby(keys).size()
    n_pairs = sum(map(len, info.by_fraction.values()))
    assert len(sizes) == n_pairs * 2 * 3 and (sizes == 150).all()  # 150 genes, 2 splits, 3 classes
    assert t.groupby(keys)["rank"].apply(lambda r: sorted(r) == list(range(1, 151))).all()
    assert np.isfinite(t["attribution"]).all()
    md = write_report(out)["report_md"].read_text()
    assert "## Genes carrying the prediction" in md and "100% of the labels = " in md
    assert "at the largest fraction (100% of the labels)" in md


def test_resume_refuses_a_0_2_directory(bench, tmp_path, data_file):
    import shutil

    out, _ = bench
    old = tmp_path / "old"
    shutil.copytree(out, old)
    settings = json.loads((Layout(old).settings).read_text())
    del settings["layout"]
    settings["exprssl_version"] = "0.2.0"
    (Layout(old).settings).write_text(json.dumps(settings))
    before = (Layout(old).results).read_bytes()
    with pytest.raises(
        ConfigError,
        match=r"^\S+old: a benchmark directory of exprssl 0.2.0, whose protocol split the "
        r"labels differently; use a new --out directory",
    ) as e:
        run_benchmark(_cfg(data_file, old), progress=False)
    assert "\n" not in str(e.value) and (Layout(old).results).read_bytes() == before


def test_all_leukemia_100_percent_is_every_non_test_label_and_paper_is_0_2s_split():
    """The bundled subtype task: each split's label fractions are nested subsets of every
    non-test labelled profile (100% = all of them), the pool is every non-test profile, and no
    test profile is in a pool or a labelled subset; --protocol paper gives 0.2's split."""
    from exprssl.evaluation.manifest import describe_full_labels
    from exprssl.splits import label_fraction_subsets, split_indices

    base = dict(
        data="all_leukemia", label="mol.biol", out="unused", min_class_size=5, splits=3, seeds=2
    )
    cfg = BenchmarkConfig(**base)
    cohort = load_cohort(cfg)
    cfg = resolve_config(cfg, len(cohort.labelled))
    plan = plan_benchmark(cfg, cohort)
    n, labelled = cohort.adata.n_obs, set(cohort.labelled)
    assert cfg.split == {"train": 0.8, "test": 0.2} and len(plan.splits) == 3
    for s in plan.splits:
        test = set(s.test)
        assert set(s.finetune) == labelled - test and set(s.pretrain) == set(s.finetune)
        assert set(s.pool) == set(range(n)) - test  # every non-test profile, dropped classes too
        assert len(test) == pytest.approx(0.2 * len(labelled), abs=3)
        for seed in range(cfg.seeds):
            subsets = label_fraction_subsets(cohort.y[s.finetune], plan.fractions, seed=seed)
            assert set(s.finetune[subsets[1.0]]) == set(s.finetune)
            previous: set = set()
            for f in plan.fractions:  # nested, never a test profile
                chosen = set(s.finetune[subsets[f]])
                assert previous <= chosen and not chosen & test
                previous = chosen
    ft = plan.splits[0].finetune
    first = ft[label_fraction_subsets(cohort.y[ft], plan.fractions, seed=0)[plan.fractions[0]]]
    per_class = np.bincount(cohort.y[first], minlength=len(cohort.classes))
    assert per_class.min() >= 1 and len(first) <= 2 * len(cohort.classes)  # about one per class
    full = describe_full_labels(cfg, cohort, plan)
    assert full.mean == pytest.approx(np.mean([len(s.finetune) for s in plan.splits]))
    assert sum(full.per_class.values()) == pytest.approx(full.mean)

    paper = resolve_config(BenchmarkConfig(**base, protocol="paper"), len(cohort.labelled))
    for s in plan_benchmark(paper, cohort).splits:  # 0.2's default split, part for part
        lab = cohort.labelled
        parts = split_indices(
            cohort.classes[cohort.y[lab]],
            {"pretrain": 0.6, "finetune": 0.2, "test": 0.2},
            seed=s.index,
        )
        for k in ("pretrain", "finetune", "test"):
            np.testing.assert_array_equal(np.sort(getattr(s, k)), np.sort(lab[parts[k]]))
        assert set(s.pool) == set(s.pretrain) | set(np.flatnonzero(cohort.y < 0))


def test_every_explainable_approach_gives_per_class_gene_attributions(bench, data_file):
    """Each kind the attribution stage explains (probe and fine-tuned encoder by integrated
    gradients, the MLP baseline, logistic regression, the elastic net, PCA + logistic regression
    mapped back to the genes) gives a finite (classes x genes) table from its tuned params."""
    from exprssl.evaluation.attribution_stage import AttributionTask, explain_split
    from exprssl.evaluation.heads import HeadRecipe

    out, _ = bench
    cache = out / "cache" / "split0"
    feats = {
        k: str(cache / f)
        for k, f in (
            (GENES, "X.npy"),
            (POOL, "pool.npy"),
            (PCA_SCORES, "pca.npy"),
            (FeatureKey.embedding("scarf", 0), "Z_scarf_0.npy"),
        )
    }
    t = pd.read_csv(Layout(out).tuning)
    t = t[(t["split"] == 0) & (t["seed"] == 0) & (t["fraction"] == 1.0)].set_index("approach")[
        "params"
    ]
    names = ["scarf+linear_probe", "scarf+finetune", "mlp", "logreg", "elasticnet", "pca_logreg"]
    parts = json.loads((Layout(out).splits).read_text())["0"]
    cfg = _cfg(data_file, out)
    task = AttributionTask(
        0,
        1.0,
        [(a, a.split("+")[0], a.split("+")[-1], json.loads(t[a])) for a in names],
        lab=np.array(parts["finetune"]),
        val=np.array([], dtype=int),
        rows=np.array(parts["test"]),
        y=load_cohort(cfg).y,
        n_classes=3,
        features=feats,
        models={"scarf": str(out / "models" / "split0" / "scarf")},
        encoder=cfg.encoder,
        recipe=HeadRecipe.check(cfg.finetune),
    )
    values = explain_split(task)
    assert list(values) == names
    for a, v in values.items():
        assert v.shape == (3, 150) and np.isfinite(v).all() and (np.abs(v).sum(1) > 0).all(), a
