"""Classes too small for the outer split: by default they only pretrain (one warning names them),
the first screen says so; an explicit ``min_class_size`` keeps 0.3's strict behaviour."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from test_report import _bench_dir

from exprssl.datasets import synthetic
from exprssl.errors import ConfigError
from exprssl.evaluation.protocol import (
    BenchmarkConfig,
    load_cohort,
    plan_benchmark,
    resolve_config,
)
from exprssl.evaluation.schema import Layout, Manifest
from exprssl.io import write_h5ad
from exprssl.report import answer
from exprssl.splits import split_indices, too_small_for_split


@pytest.fixture
def warnings_said(caplog, monkeypatch):
    """The exprssl logger's warnings (the CLI's handler, set by an earlier CLI test, stops them
    from reaching pytest's)."""
    monkeypatch.setattr(logging.getLogger("exprssl"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="exprssl")
    return lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _plan(**kw):
    cfg = BenchmarkConfig(out="unused", seeds=1, **kw)
    cohort = load_cohort(cfg)
    cfg = resolve_config(cfg, len(cohort.labelled))
    return cohort, plan_benchmark(cfg, cohort)


def test_all_leukemia_one_patient_classes_only_pretrain_by_default(warnings_said):
    cohort, plan = _plan(data="all_leukemia", label="mol.biol")
    said = warnings_said()
    assert (
        len(said) == 1
        and (
            "2 classes too small for the split only pretrain, without their labels: "
            "'NUP-98' (1 sample), 'p15/p16' (1 sample) (fewer than 2 samples, one for each part of "
            "the split: train and test; --min-class-size 1 refuses the run instead)"
        )
        in said[0]
    )
    assert cohort.dropped == {"NUP-98": 1, "p15/p16": 1}
    assert cohort.dropped_rule.startswith("fewer than 2 samples")
    assert list(cohort.classes) == ["ALL1/AF4", "BCR/ABL", "E2A/PBX1", "NEG"]
    small = np.flatnonzero(cohort.adata.obs["mol.biol"].isin(["NUP-98", "p15/p16"]))
    assert len(small) == 2 and (cohort.y[small] == -1).all() and len(cohort.labelled) == 126
    assert len(plan.splits) == 5  # the default protocol's outer splits on 126 labels
    for s in plan.splits:
        labelled = set(s.pretrain) | set(s.finetune) | set(s.test)
        assert not labelled & set(small) and set(small) <= set(s.pool)
        assert len(s.test) == 25 and set(np.unique(cohort.y[s.test])) == {0, 1, 2, 3}


def test_min_class_size_1_keeps_every_class_and_refuses_as_0_3_did(warnings_said):
    with pytest.raises(ConfigError) as e:
        _plan(data="all_leukemia", label="mol.biol", min_class_size=1)
    assert "class 'NUP-98' has 1 samples, fewer than the 2 parts" in str(e.value)
    assert "--min-class-size N" in str(e.value) and warnings_said() == []
    cohort, _ = _plan(data="all_leukemia", label="mol.biol", min_class_size=6, splits=2)
    assert cohort.dropped == {"E2A/PBX1": 5, "NUP-98": 1, "p15/p16": 1}
    assert cohort.dropped_rule == "fewer than 6 samples (min_class_size)" and warnings_said() == []


def test_the_paper_protocol_needs_three_samples_and_groups_count_as_one(tmp_path, warnings_said):
    a = synthetic(60, 30, 2, seed=0)
    y = a.obs["label"].astype(str).to_numpy().astype(object)
    y[:2], y[2:5] = "pair", "trio"  # 2 and 3 samples
    a.obs["label"] = y
    a.obs["patient"] = [f"p{i}" for i in range(60)]
    a.obs.loc[a.obs_names[2:5], "patient"] = "p2"  # the trio: one patient
    p = tmp_path / "c.h5ad"
    write_h5ad(a, p)
    cohort, _ = _plan(data=str(p), label="label", protocol="paper", splits=2)
    assert cohort.dropped == {"pair": 2}  # three parts: pretrain, finetune, test
    assert (
        "fewer than 3 samples, one for each part of the split: pretrain, finetune and test"
        in (warnings_said()[-1])
    )
    cohort, _ = _plan(data=str(p), label="label", group="patient", splits=2)
    assert cohort.dropped == {"trio": 3}  # two parts, but one patient
    assert "'trio' (3 samples) (fewer than 2 'patient' groups" in warnings_said()[-1]


def test_a_class_left_alone_in_a_group_once_its_leader_leaves_is_too_small_too():
    """B has no group of its own (its one sample sits in A's patient g1): once A leaves, g1 is
    B's only group, so B cannot be split either."""
    y = np.array(["A", "A", "B", "C", "C", "C", "D", "D"])
    g = np.array(["g1", "g1", "g1", "g2", "g3", "g4", "g5", "g6"])
    assert too_small_for_split(y, 2, groups=g) == {"A": 2, "B": 1}
    keep = ~np.isin(y, ["A", "B"])
    parts = split_indices(y[keep], {"train": 0.5, "test": 0.5}, groups=g[keep])
    assert sorted(len(v) for v in parts.values()) == [2, 3]
    assert too_small_for_split(y, 2) == {"B": 1} and too_small_for_split(y, 1) == {}


def test_the_first_screen_and_the_console_say_which_classes_only_pretrain(tmp_path):
    out, summary = _bench_dir(tmp_path, gap=0.25)
    m = json.loads(Layout(out).manifest.read_text())
    m["dataset"]["dropped_rule"] = "fewer than 2 samples, one for each part of the split"
    Layout(out).manifest.write_text(json.dumps(m))
    lines = answer(summary, Manifest.read(out), "balanced_accuracy", plain=True)
    console = [x for x in lines if not x.startswith("- ")]  # what the CLI prints
    assert (
        "Classes too small for the task only pretrain, without their labels (fewer than 2 "
        "samples, one for each part of the split): tiny: 2." in console
    )
    assert not [x for x in lines if "tiny" in x and x.startswith("- ")]  # said once
