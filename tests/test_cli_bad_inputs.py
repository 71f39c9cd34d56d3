"""Bad input through every command: exit 2, one line, no traceback, and nothing a user owns changed.

Table-driven: the file corpus of ``tests/bad_inputs.py`` runs through every command that reads
such a file, then bad option values, damaged model directories and output paths that would
replace or lose a user's files.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch
import typer
from bad_inputs import (
    BAD_KEYS,
    BAD_MODELS,
    BAD_PYTHON_KEYS,
    BAD_SHEET_COLUMNS,
    CLOSED_PIPE_COMMANDS,
    LYING_CONFIGS,
    bad_input_corpus,
    good_counts,
    snapshot,
)
from typer.testing import CliRunner

from exprssl.cli import app

runner = CliRunner()
with tempfile.TemporaryDirectory() as _d:
    CASES = sorted(bad_input_corpus(Path(_d)))


def assert_refused(args, root: Path, *needles: str, gone: list[Path] = ()):
    before = snapshot(root)
    r = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    errors = [line for line in r.stderr.splitlines() if line.startswith("exprssl: error:")]
    assert r.exit_code == 2, (args, r.output)
    assert "Traceback" not in r.output and len(errors) == 1, r.output
    for n in needles:
        assert n in errors[0], (n, errors[0])
    assert snapshot(root) == before, f"{args}: changed the user's files"
    for p in gone:
        assert not p.exists(), f"{p} was written"
    return errors[0]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    (root / "corpus").mkdir()
    corpus = bad_input_corpus(root / "corpus")
    good = root / "good.csv"
    good_counts().to_csv(good)
    model = root / "m"
    r = runner.invoke(
        app,
        [
            "pretrain",
            "--method",
            "scarf",
            "--epochs",
            "1",
            "--data",
            str(good),
            "--out",
            str(model),
            "--set",
            "hidden_dims=[16]",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    return root, corpus, good, model


def _commands(case, root: Path, model: Path):
    out = root / "out"
    if case.kind == "data":
        return [
            ["info", case.path],
            ["pretrain", "--method", "scarf", "--data", case.path, "--out", out / "model"],
            ["embed", "--model", model, "--data", case.path, "--out", out / "e.h5ad"],
            ["benchmark", "--data", case.path, "--label", "x", "--out", out / "bench"],
        ]
    if case.kind == "labels":
        return [
            ["info", case.data, "--labels", case.path],
            [
                "embed",
                "--model",
                model,
                "--data",
                case.data,
                "--labels",
                case.path,
                "--out",
                out / "e.h5ad",
            ],
            [
                "benchmark",
                "--data",
                case.data,
                "--labels",
                case.path,
                "--label",
                "x",
                "--out",
                out / "bench",
            ],
        ]
    return [["convert", case.path, "--out", out / "store.h5ad"]]


@pytest.mark.parametrize("name", CASES)
def test_bad_file_through_every_command(env, name):
    root, corpus, _, model = env
    case = corpus[name]
    for args in _commands(case, root, model):
        line = assert_refused(args, root, gone=[root / "out"])
        assert str(case.path) in line, (args, line)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--epochs", "-1"], "epochs must be an integer >= 1, got -1"),
        (["--lr", "-1"], "lr must be"),
        (["--lr", "1e30"], "lr must be"),
        (["--precision", "bogus"], "precision"),
        (["--strategy", "bogus"], "strategy"),
        (["--set", "accelerator=tpu"], "accelerator"),
        (["--set", "hidden_dims=abc"], "hidden_dims"),
        (["--set", "temperature=0"], "temperature must be a finite number > 0, got 0"),
        (["--set", "no_such_option=1"], "no_such_option"),
        (["--set", "corruption_rate=1.5"], "corruption_rate"),
        (["--batch-size", "1"], "batch_size"),
    ],
)
def test_bad_option_values(env, args, needle):
    root, _, good, _ = env
    assert_refused(
        ["pretrain", "--method", "scarf", "--data", good, "--out", root / "out" / "m", *args],
        root,
        needle,
        gone=[root / "out"],
    )


@pytest.mark.parametrize(
    "yaml_text,needle",
    [
        ('epochs: "abc"', "epochs must be an integer"),
        ("preprocessing: 5", "preprocessing must be a mapping"),
        ("preprocessing: {foo: 1}", "foo"),
        ("temprature: 0.5", "temprature"),
        ("- a list", "mapping"),
        ("epochs: [1", "not valid YAML"),
        ("!!python/object/apply:os.system ['echo hacked']", "not valid YAML"),
    ],
)
def test_bad_config_files(env, tmp_path, yaml_text, needle):
    root, _, good, _ = env
    cfg = root / "cfg.yaml"
    cfg.write_text(
        f"method: scarf\ndata: {good}\nout: {root / 'out' / 'm'}\n"
        if not yaml_text.startswith(("-", "!"))
        else ""
    )
    cfg.write_text(cfg.read_text() + yaml_text + "\n")
    assert_refused(["pretrain", "--config", cfg], root, needle, gone=[root / "out"])
    cfg.unlink()


def test_benchmark_option_values(env):
    root, _, good, _ = env
    for args, needle in (
        (["--seeds", "0"], "seeds must be an integer >= 1"),
        (["--splits", "0"], "splits must be an integer >= 1"),
        (["--fractions", "0.5,2"], "2.0 is outside (0, 1]"),
        (["--methods", "simclr"], "unknown method 'simclr'"),
        (["--baselines", "svm"], "unknown baseline 'svm'"),
        (["--protocol", "magic"], "protocol must be one of"),
    ):
        assert_refused(
            ["benchmark", "--data", good, "--label", "x", "--out", root / "out" / "b", *args],
            root,
            needle,
            gone=[root / "out"],
        )


def _damaged_models(model: Path, root: Path) -> dict[str, Path]:
    import shutil

    cases = {}

    def copy(name: str) -> Path:
        p = root / "models" / name
        shutil.copytree(model, p)
        cases[name] = p
        return p

    (copy("truncated_weights") / "weights.safetensors").write_bytes(
        (model / "weights.safetensors").read_bytes()[:200]
    )
    (copy("random_weights") / "weights.safetensors").write_bytes(os.urandom(4096))
    (copy("invalid_config") / "config.json").write_text("{not json")
    (copy("list_config") / "config.json").write_text("[1, 2]")
    cfg = (model / "config.json").read_text()
    (copy("no_n_features") / "config.json").write_text(cfg.replace('"n_features"', '"n_feat"'))
    import json

    wrong = json.loads(cfg)
    wrong["n_features"] = 7
    (copy("wrong_n_features") / "config.json").write_text(json.dumps(wrong))
    (copy("missing_preprocessor") / "preprocessor.json").unlink()

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {root / 'hacked'}",))

    legacy = Path(__file__).parent / "data" / "model_0_3"  # 0.3's format: a torch pickle
    p = root / "models" / "malicious_pickle"
    shutil.copytree(legacy, p)
    cases["malicious_pickle"] = p
    torch.save({"x": Evil()}, p / "weights.pt")
    return cases


def test_damaged_model_directories(env):
    root, _, good, model = env
    for name, path in _damaged_models(model, root).items():
        line = assert_refused(
            ["embed", "--model", path, "--data", good, "--out", root / "out" / "e.h5ad"],
            root,
            gone=[root / "out"],
        )
        assert str(path) in line, (name, line)
    assert not (root / "hacked").exists()


def test_outputs_never_replace_or_lose_user_files(env):
    root, _, good, model = env
    user = root / "p"
    user.mkdir()
    (user / "data.csv").write_bytes(good.read_bytes())
    (user / "notes.txt").write_text("x")
    notes = root / "notes.txt"
    notes.write_text("precious")
    pretrain = [
        "pretrain",
        "--method",
        "scarf",
        "--epochs",
        "1",
        "--set",
        "hidden_dims=[8]",
        "--no-progress",
    ]
    assert_refused(
        [*pretrain, "--data", user / "data.csv", "--out", user], root, "contains an input"
    )
    assert_refused(
        [*pretrain, "--data", good, "--out", user], root, "not an exprssl model directory"
    )
    assert_refused(
        [*pretrain, "--data", good, "--out", notes], root, "not an exprssl model directory"
    )
    assert_refused([*pretrain, "--data", good, "--out", model], root, "--overwrite")
    assert_refused([*pretrain, "--data", good, "--out", notes / "sub"], root, "is a file")
    assert_refused([*pretrain, "--data", good, "--out", "/sys/exprssl-model"], root, "cannot write")
    cwd = os.getcwd()
    try:
        os.chdir(user)
        assert_refused(
            [*pretrain, "--data", good, "--out", "."], root, "not an exprssl model directory"
        )
    finally:
        os.chdir(cwd)
    assert_refused(
        [*pretrain, "--data", good, "--out", model / "weights.safetensors"],
        root,
        "not an exprssl model",
    )
    emb = root / "e.h5ad"
    r = runner.invoke(app, ["embed", "--model", str(model), "--data", str(good), "--out", str(emb)])
    assert r.exit_code == 0, r.output
    embed = ["embed", "--model", model, "--data"]
    assert_refused([*embed, emb, "--out", emb], root, "is an input")
    assert_refused([*embed, good, "--out", emb], root, "--overwrite")
    assert_refused(
        [*embed, good, "--out", notes.with_suffix(".h5ad").parent / "p" / "x.txt"], root, ".h5ad"
    )
    (user / "dir.h5ad").mkdir()
    assert_refused([*embed, good, "--out", user / "dir.h5ad"], root, "not an exprssl embedding")
    assert_refused(
        ["benchmark", "--data", good, "--label", "x", "--out", notes],
        root,
        "not an exprssl benchmark",
    )
    assert_refused(
        ["benchmark", "--data", good, "--label", "x", "--out", user],
        root,
        "not an exprssl benchmark",
    )
    assert_refused(["convert", good, "--out", notes], root, "not an exprssl expression store")
    r = runner.invoke(
        app, ["embed", "--model", str(model), "--data", str(good), "--out", str(emb), "--overwrite"]
    )
    assert r.exit_code == 0, r.output  # an exprssl artefact of the same kind, replaced on request


# ------------------------------------------------------------------------ round three (issue 21)
def _small_cohort(root: Path, n: int = 40) -> tuple[Path, Path]:
    """A 40-sample table and its sheet (two classes of 20): the cohort the issue hung on."""
    data, sheet = root / "c40.csv", root / "c40_sheet.csv"
    if not data.exists():
        good_counts(n_samples=n, n_genes=30).to_csv(data)
        sheet.write_text(
            "sample,L,age,pid,code\n"
            + "".join(
                f"S{i},{'ab'[i % 2]},{20 + i * 1.5},P-{i},{['1', '1.0', '2'][i % 3]}\n"
                for i in range(n)
            )
        )
    return data, sheet


@pytest.mark.parametrize("env_value", ["abc", "0", "-2"])
def test_bad_thread_count_in_environment(env, monkeypatch, env_value):
    root, _, good, _ = env
    monkeypatch.setenv("EXPRSSL_THREADS", env_value)
    assert_refused(
        ["info", good], root, "EXPRSSL_THREADS must be a positive integer", f"{env_value!r}"
    )


def test_removed_working_directory(env, tmp_path):
    root, _, good, _ = env
    gone = tmp_path / "gone"
    gone.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(gone)
        gone.rmdir()
        assert_refused(["info", good], root, "current working directory no longer exists")
    finally:
        os.chdir(cwd)


def test_removed_working_directory_in_a_fresh_process(env, tmp_path):
    """The real command, not the test runner: no oneMKL abort before exprssl can speak."""
    import subprocess
    import sys

    _, _, good, _ = env
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (
        f"import os; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); import sys; sys.argv = "
        f"['exprssl', 'info', {str(good)!r}]; from exprssl.cli import main; main()"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "no longer exists" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--val-fraction", "0.99"], "val_fraction 0.99 holds out 30 of 30 samples"),
        (["--set", "hidden_dims=[100000000]"], "GB to train, more than the"),
        (["--top-genes", "100000"], "--top-genes 100000 is more than the 60 genes"),
        (["--set", "log_dir=LOGS"], "not an exprssl training log directory"),
        (["--set", "log_dir=NOTES/sub"], "(part of the path) is a file"),
        (["--config", "CFGDIR"], "is a directory; --config takes a YAML file"),
        (["--config", "LATIN"], "not UTF-8 text"),
        (["--num-workers", "100000"], "num_workers must be an integer in [0, 256]"),
        (["--set", "log_dir=OUT/logs"], "log_dir must lie outside the model directory"),
    ],
)
def test_option_values_checked_against_the_data(env, args, needle):
    """Range checks that need the data (samples, genes, memory) or the file system, before any
    work: exit 2, one line, and the user's files unchanged (a metrics.csv of their own too)."""
    root, _, good, _ = env
    logs = root / "user_logs"
    logs.mkdir(exist_ok=True)
    (logs / "metrics.csv").write_text("epoch,mine\n1,2\n")
    (root / "cfgdir").mkdir(exist_ok=True)
    (root / "latin.yaml").write_bytes(b"method: scarf\nnote: caf\xe9\n")
    (root / "notes.txt").write_text("precious")
    where = {
        "LOGS": str(logs),
        "NOTES": str(root / "notes.txt"),
        "CFGDIR": str(root / "cfgdir"),
        "LATIN": str(root / "latin.yaml"),
        "OUT": str(root / "out" / "m"),
    }
    args = [functools.reduce(lambda a, kv: a.replace(*kv), where.items(), a) for a in args]
    assert_refused(
        [
            "pretrain",
            "--method",
            "scarf",
            "--epochs",
            "1",
            "--no-progress",
            "--data",
            good,
            "--out",
            root / "out" / "m",
            *args,
        ],
        root,
        needle,
        gone=[root / "out"],
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--splits", "1000"], "splits 1000 is more than this cohort supports: at most 20"),
        (["--seeds", "1000"], "seeds 1000 is more than 100"),
        (["--orientation", "sideways"], "orientation must be one of"),
        (["--label", "age"], "label column 'age' looks continuous (40 distinct values)"),
        (
            ["--label", "pid"],
            "label column 'pid' has a different value for every sample (40 of 40)",
        ),
        (["--fractions", ","], "lists nothing"),
        (["--top-genes", "500"], "--top-genes 500 is more than the 30 genes"),
        (["--pretrain-data", "DATA"], "is the --data file itself"),
    ],
)
def test_benchmark_options_bounded_by_the_data(env, args, needle):
    """Refused at once (the issue's --splits 1000 on 40 samples ran for hours), nothing written."""
    import time

    root, _, _, _ = env
    data, sheet = _small_cohort(root)
    args = [str(data) if a == "DATA" else a for a in args]
    base = {"--label": "L"}
    if "--label" in args:
        base = {}
    t0 = time.perf_counter()
    assert_refused(
        [
            "benchmark",
            "--data",
            data,
            "--labels",
            sheet,
            *[x for kv in base.items() for x in kv],
            "--methods",
            "scarf",
            "--epochs",
            "1",
            "--out",
            root / "out" / "b",
            "--no-progress",
            *args,
        ],
        root,
        needle,
        gone=[root / "out"],
    )
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize(
    "yaml_text,needle",
    [
        ("bootstrap: 1000000000", "bootstrap must be an integer in [100, 100000], got 1000000000"),
        ("n_fractions: 100000", "n_fractions must be an integer in [1, 50], got 100000"),
        ("orientation: diagonal", "orientation must be one of"),
        ("jobs: 100000", "jobs must be at most"),
        ("label: [L, M]", "label must be a single name or path, got ['L', 'M']"),
        ("group: {a: 1}", "group must be a single name or path"),
    ],
)
def test_benchmark_config_file_bounds(env, yaml_text, needle):
    root, _, good, _ = env
    cfg = root / "bench.yaml"
    cfg.write_text(f"data: {good}\nlabel: x\nout: {root / 'out' / 'b'}\n{yaml_text}\n")
    try:
        assert_refused(["benchmark", "--config", cfg], root, needle, gone=[root / "out"])
    finally:
        cfg.unlink()


def test_benchmark_model_too_large_for_memory(env):
    """Every method's model is sized against the memory before any pretraining starts."""
    root, _, _, _ = env
    data, sheet = _small_cohort(root)
    cfg = root / "big.yaml"
    cfg.write_text(
        f"data: {data}\nlabels: {sheet}\nlabel: L\nout: {root / 'out' / 'b'}\nmethods: [scarf]\n"
        "encoder: {hidden_dims: [100000000]}\n"
    )
    try:
        assert_refused(
            ["benchmark", "--config", cfg, "--no-progress"],
            root,
            "GB to train, more than the",
            gone=[root / "out"],
        )
    finally:
        cfg.unlink()


def test_embed_options(env):
    root, _, good, model = env
    assert_refused(
        ["embed", "--model", model, "--data", good, "--out", root / "out" / "e.h5ad", "--key", " "],
        root,
        "obsm key ' ': must be a non-empty name",
        gone=[root / "out"],
    )
    assert_refused(
        ["embed", "--model", model, "--data", good, "--out", model / "e.h5ad"],
        root,
        "lies inside an input directory",
        gone=[model / "e.h5ad"],
    )


@pytest.mark.parametrize("command", ["pretrain", "embed", "benchmark", "convert"])
def test_output_through_links_and_files(env, command):
    """--out that is a symlink loop or a dangling link, or lies under a regular file: one line
    naming the path (and the part that is a file), never an internal error."""
    root, _, good, model = env
    links = root / "links"
    links.mkdir(exist_ok=True)
    ext = {"embed": ".h5ad", "convert": ".h5"}.get(command, "")
    loop, dangling = links / f"loop{ext}", links / f"dangling{ext}"
    if not loop.is_symlink():
        loop.symlink_to(loop)
        dangling.symlink_to(links / "nowhere")
    notes = root / "notes.txt"
    notes.write_text("precious")
    base = {
        "pretrain": ["pretrain", "--method", "scarf", "--epochs", "1", "--data", good],
        "embed": ["embed", "--model", model, "--data", good],
        "benchmark": ["benchmark", "--data", good, "--label", "x"],
        "convert": ["convert", good],
    }[command]
    assert_refused([*base, "--out", loop], root, "symbolic link loop")
    assert_refused([*base, "--out", dangling], root, "symbolic link to a missing target")
    assert_refused(
        [*base, "--out", notes / "sub" / f"x{ext}"], root, f"{notes} (part of the path) is a file"
    )


def test_overwrite_keeps_what_the_user_put_in_a_model_directory(env, tmp_path):
    root, _, good, model = env
    import shutil

    mine = root / "m_with_notes"
    if not mine.exists():
        shutil.copytree(model, mine)
        (mine / "notes.txt").write_text("which run this was")
    assert_refused(
        [
            "pretrain",
            "--method",
            "scarf",
            "--epochs",
            "1",
            "--no-progress",
            "--data",
            good,
            "--out",
            mine,
            "--overwrite",
        ],
        root,
        "holds notes.txt, which exprssl did not write",
    )
    assert (mine / "notes.txt").read_text() == "which run this was"


def test_log_dir_of_exprssl_is_reused_and_marked(env, tmp_path):
    root, _, good, _ = env
    logs = tmp_path / "logs"
    args = [
        "pretrain",
        "--method",
        "scarf",
        "--epochs",
        "1",
        "--no-progress",
        "--set",
        "hidden_dims=[8]",
        "--data",
        str(good),
        "--set",
        f"log_dir={logs}",
    ]
    for out in ("m1", "m2"):  # a second run writes into exprssl's own log directory again
        r = runner.invoke(app, [*args, "--out", str(tmp_path / out)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    assert {p.name for p in logs.iterdir()} >= {"metrics.csv", "exprssl-log.json", "checkpoints"}


def _damaged_model(model: Path, root: Path, name: str) -> Path:
    import shutil

    p = root / "models3" / name
    if p.exists():
        shutil.rmtree(p)
    shutil.copytree(model, p)
    return p


def _reseal(directory: Path) -> None:
    """The model card's hashes brought up to date with the files, as a model shipped with a
    bad file and a card that vouches for it: the load-time checks behind the hash must hold."""
    from exprssl.card import CARD_FILE, file_sha256, read_card

    card = directory / CARD_FILE
    text = card.read_text()
    for name, digest in read_card(directory)["files_sha256"].items():
        text = text.replace(digest, file_sha256(directory / name))
    card.write_text(text)


def test_models_with_nan_or_foreign_weights_are_refused_at_load(env):
    import json

    root, _, good, model = env
    from safetensors.torch import load_file

    from exprssl.model_io import save_weights

    state = load_file(model / "weights.safetensors")
    nan_weights = _damaged_model(model, root, "nan_weights")
    bad = dict(state)
    bad["encoder.0.weight"] = bad["encoder.0.weight"].clone()
    bad["encoder.0.weight"][0, 0] = float("nan")
    save_weights(bad, "scarf", nan_weights / "weights.safetensors")
    nan_prep = _damaged_model(model, root, "nan_preprocessor")
    prep = json.loads((model / "preprocessor.json").read_text())
    prep["fitted"]["fill_"][0] = float("nan")
    (nan_prep / "preprocessor.json").write_text(json.dumps(prep))
    other = _damaged_model(model, root, "other_method")
    save_weights(state, "barlow", other / "weights.safetensors")
    for damaged in (nan_weights, nan_prep, other):
        _reseal(damaged)
    for path, needle in (
        (nan_weights, "encoder.0.weight hold NaN"),
        (nan_prep, "'fill' holds 1 NaN"),
        (other, "weights of a 'barlow' model, but config.json names 'scarf'"),
    ):
        assert_refused(
            ["embed", "--model", path, "--data", good, "--out", root / "out" / "e.h5ad"],
            root,
            str(path),
            needle,
            gone=[root / "out"],
        )


@pytest.mark.parametrize("command", ["pretrain", "embed"])
def test_streamed_h5ad_with_duplicate_samples(env, command):
    root, corpus, _, model = env
    dup = corpus["data:dup_samples.h5ad"].path
    base = (
        ["pretrain", "--method", "scarf", "--epochs", "1", "--out", root / "out" / "m"]
        if command == "pretrain"
        else ["embed", "--model", model, "--out", root / "out" / "e.h5ad"]
    )
    assert_refused(
        [*base, "--data", dup, "--stream"], root, "duplicated sample ids", gone=[root / "out"]
    )


def test_bundled_name_as_data_and_out(env, tmp_path):
    """--data all_leukemia --out all_leukemia: the bundled data is meant, not the directory of
    that name; the run gets as far as its own checks (here a refused --splits)."""
    root, _, _, _ = env
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        Path("all_leukemia").mkdir()
        line = assert_refused(
            [
                "benchmark",
                "--data",
                "all_leukemia",
                "--label",
                "mol.biol",
                "--out",
                "all_leukemia",
                "--min-class-size",
                "5",
                "--splits",
                "1000",
            ],
            tmp_path,
            "splits 1000",
        )
        assert "is an input" not in line
    finally:
        os.chdir(cwd)


def test_repeated_methods_and_baselines_run_once():
    from exprssl.evaluation.protocol import BenchmarkConfig

    cfg = BenchmarkConfig.from_dict(
        {
            "data": "x",
            "label": "y",
            "methods": ["scarf", "scarf"],
            "baselines": ["logreg", "logreg", "xgboost"],
        }
    )
    cfg.validate()  # values are normalised where they are checked
    assert cfg.methods == ["scarf"] and cfg.baselines == ["logreg", "xgboost"]


def test_yaml_scalars_where_lists_belong():
    """`methods: scarf` in a YAML file is one method, not five one-letter ones; `fractions: 0.5`
    one fraction, not an internal error."""
    from exprssl.evaluation.protocol import BenchmarkConfig

    cfg = BenchmarkConfig.from_dict(
        {
            "data": "x",
            "label": "y",
            "methods": "scarf",
            "baselines": "logreg, mlp",
            "fractions": 0.5,
        }
    )
    cfg.validate()
    assert (cfg.methods, cfg.baselines, cfg.fractions) == (["scarf"], ["logreg", "mlp"], [0.5])


def test_repeated_methods_are_said(env):
    root, _, _, _ = env
    data, sheet = _small_cohort(root)
    r = runner.invoke(
        app,
        [
            "benchmark",
            "--data",
            str(data),
            "--labels",
            str(sheet),
            "--label",
            "L",
            "--out",
            str(root / "out" / "b"),
            "--methods",
            "scarf,scarf",
            "--baselines",
            "logreg,logreg",
            "--splits",
            "1000",
        ],
    )
    assert r.exit_code == 2
    assert "methods: scarf given more than once; each runs once" in r.stderr
    assert "baselines: logreg given more than once" in r.stderr


def test_labels_differing_in_case_or_spaces_info_and_benchmark_agree(env, tmp_path):
    """'Tumor', 'Tumor ' and 'tumor': spaces removed and case differences named, the same way
    (the same classes) in `info` and in the benchmark's cohort."""
    from exprssl.evaluation.protocol import BenchmarkConfig, load_cohort

    root, _, _, _ = env
    data, _ = _small_cohort(root)
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "sample,L\n"
        + "".join(f"S{i},{['Tumor', 'Tumor ', 'tumor', 'Normal'][i % 4]}\n" for i in range(40))
    )
    r = runner.invoke(app, ["info", str(data), "--labels", str(sheet)])
    assert r.exit_code == 0, r.output
    assert (
        "label L (3 classes): Tumor: 20, " in r.stdout
        and "Normal: 10" in r.stdout
        and "tumor: 10" in r.stdout
    )
    assert "10 values had surrounding spaces, removed" in r.stderr
    assert "'Tumor' and 'tumor' differ only in upper/lower case" in r.stderr
    cohort = load_cohort(BenchmarkConfig(data=str(data), labels=str(sheet), label="L"))
    assert sorted(cohort.classes) == ["Normal", "Tumor", "tumor"]
    assert np.bincount(cohort.y).tolist() == [10, 20, 10]


def test_numeric_classes_written_differently_are_one_class(env):
    """'1' and '1.0' in a sample sheet are one class, in `info` as in the benchmark, and said."""
    root, _, _, _ = env
    data, sheet = _small_cohort(root)
    r = runner.invoke(app, ["info", str(data), "--labels", str(sheet)])
    assert r.exit_code == 0, r.output
    assert "label code (2 classes): 1: 27, 2: 13" in r.stdout
    assert (
        "label column 'code': numeric classes written differently (e.g. '1.0') read as numbers"
        in r.stderr
    )


def test_warnings_are_one_line_through_the_logger(env, tmp_path):
    """A constant input collapses the embeddings: one `exprssl: warning:` line, no UserWarning
    with a source path."""
    root, _, _, _ = env
    const = tmp_path / "const.csv"
    frame = good_counts()
    frame[:] = 5
    frame.to_csv(const)
    r = runner.invoke(
        app,
        [
            "pretrain",
            "--method",
            "scarf",
            "--epochs",
            "1",
            "--no-progress",
            "--data",
            str(const),
            "--orientation",
            "samples_in_rows",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "UserWarning" not in r.output and ".py:" not in r.output, r.output
    assert "exprssl: warning: scarf: embeddings look collapsed" in r.stderr


# ============================================================================ round four (issue 28)
def test_hostile_names_in_info_are_shown_as_written(env, tmp_path):
    """`exprssl info` shows a column `weight [kg]` and classes `[bold]A`, `$\\mathrm{x$`, from a
    file under `proj/[old]/`, literally (rich read them as markup and dropped them)."""
    _, _, good, _ = env
    data = tmp_path / "proj" / "[old]" / "counts.csv"
    data.parent.mkdir(parents=True)
    data.write_bytes(good.read_bytes())
    sheet = tmp_path / "sheet.csv"
    classes = ["[bold]A", "$\\mathrm{x$"]
    sheet.write_text(
        "sample,weight [kg],cls\n"
        + "".join(f"S{i},{'ab'[i % 2]},{classes[i % 2]}\n" for i in range(30))
    )
    r = runner.invoke(app, ["info", str(data), "--labels", str(sheet)])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"{data}: 30 samples x 60 genes"), r.stdout
    assert "label weight [kg] (2 classes): a: 15, b: 15" in r.stdout
    assert "label cls (2 classes): " in r.stdout and "[bold]A: 15" in r.stdout
    assert "$\\mathrm{x$: 15" in r.stdout


@pytest.mark.parametrize(
    "name", ["data[/x].csv", "proj/[old]/counts.csv", "[bold]x.csv", "a\\[red]b.csv"]
)
def test_bracketed_paths_in_messages(env, name):
    root, _, _, _ = env
    path = root / "missing" / name
    line = assert_refused(["info", path], root, "no such file")
    assert f"{path}: no such file" in line, line


@pytest.mark.parametrize("command,yaml_text,needle", LYING_CONFIGS)
def test_config_files_that_lie(env, command, yaml_text, needle):
    """Every YAML value is checked by type (one line naming the key), and an alias bomb or a
    document containing itself is refused at load, before anything expands it."""
    root, _, good, _ = env
    cfg = root / "lying.yaml"
    base = {
        "pretrain": f"method: scarf\ndata: {good}\nout: {root / 'out' / 'm'}\n",
        "benchmark": f"data: {good}\nlabel: x\nout: {root / 'out' / 'b'}\n",
    }[command]
    cfg.write_text(base + yaml_text)  # a key given again: the last one wins, as YAML reads it
    try:
        assert_refused([command, "--config", cfg], root, needle, gone=[root / "out"])
    finally:
        cfg.unlink()


def test_set_value_that_is_not_yaml(env):
    root, _, good, _ = env
    assert_refused(
        ["pretrain", "--method", "scarf", "--data", good, "--out", root / "out" / "m"]
        + ["--set", "hidden_dims=[1"],
        root,
        "--set hidden_dims: '[1' is not a YAML value",
        gone=[root / "out"],
    )


@pytest.mark.parametrize("key,needle", BAD_KEYS)
def test_embed_keys_that_break_the_format(env, key, needle):
    root, _, good, model = env
    assert_refused(
        ["embed", "--model", model, "--data", good, "--out", root / "out" / "e.h5ad"]
        + ["--key", key],
        root,
        needle,
        gone=[root / "out"],
    )


@pytest.mark.parametrize("key,needle", BAD_KEYS + BAD_PYTHON_KEYS)
def test_python_keys_that_break_the_format(env, key, needle):
    """SSLModel.transform / fit_transform refuse what `embed --key` refuses, in its words, before
    any work (fit_transform: before the fit)."""
    from exprssl import SSLModel
    from exprssl.errors import ConfigError

    root, _, good, model = env
    adata = ad.AnnData(good_counts().astype(np.float32))
    with pytest.raises(ConfigError) as refused:
        SSLModel.load(model).transform(adata, key=key)
    message = str(refused.value)
    assert needle in message and "\n" not in message and list(adata.obsm) == []
    unfitted = SSLModel(method="scarf", epochs=1)
    with pytest.raises(ConfigError, match=needle.replace("'", ".").replace("(", ".")):
        unfitted.fit_transform(adata, key=key)
    assert not unfitted.__sklearn_is_fitted__()
    if isinstance(key, str) and "\x00" not in key:  # the command line's line is the same
        r = runner.invoke(
            app,
            ["embed", "--model", str(model), "--data", str(good), "--key", key, "--out"]
            + [str(root / "out" / "k.h5ad")],
        )
        assert r.exit_code == 2 and message in r.stderr.replace("\n", ""), r.stderr


@pytest.mark.parametrize("column,needle", BAD_SHEET_COLUMNS)
def test_embed_sheet_columns_that_break_the_format(env, tmp_path, column, needle):
    root, _, good, model = env
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "sample,tissue\n".replace("tissue", column)
        + "".join(f"S{i},{'ab'[i % 2]}\n" for i in range(30))
    )
    assert_refused(
        ["embed", "--model", model, "--data", good, "--sample-sheet", sheet, "--out"]
        + [root / "out" / "s.h5ad"],
        root,
        needle,
        gone=[root / "out"],
    )


@pytest.mark.parametrize("given,needle", BAD_MODELS)
@pytest.mark.parametrize("command", ["embed", "benchmark"])
def test_models_through_links_and_mistyped_hub_ids(env, command, given, needle):
    root, _, good, _ = env
    links = root / "model_links"
    links.mkdir(exist_ok=True)
    where = {"LOOP": links / "loop", "DANGLING": links / "dangling"}
    if not where["LOOP"].is_symlink():
        where["LOOP"].symlink_to(where["LOOP"])
        where["DANGLING"].symlink_to(links / "nowhere")
    given = str(where.get(given, given))
    data, sheet = _small_cohort(root)
    args = {
        "embed": ["embed", "--data", good, "--out", root / "out" / "e.h5ad"],
        "benchmark": ["benchmark", "--data", data, "--labels", sheet, "--label", "L"]
        + ["--methods", "none", "--out", root / "out" / "b"],
    }[command]
    line = assert_refused([*args, "--model", given], root, needle, gone=[root / "out"])
    assert line.startswith(f"exprssl: error: {given}: "), line


def test_report_with_hostile_class_and_model_names(tmp_path):
    """TeX in a class label, markup in a model's name and card: the report is written, the
    names escaped in report.md and report.html, and every plot drawn."""
    from test_report import _bench_dir

    from exprssl.report import write_report

    model = "<img src=x onerror=alert(1)>"
    models = {model: {"given": model, "method": "<script>x</script>", "alignment": "$x$"}}
    out, _ = _bench_dir(
        tmp_path, gap=0.0, classes=("$\\mathrm{x$", "[bold]A", "_hidden"), models=models
    )
    written = write_report(out)
    assert {"embeddings", "confusion_matrix", "label_efficiency"} <= set(written)
    md = (out / "report.md").read_text()
    assert "\\$\\\\mathrm{x\\$" in md and "\\[bold\\]A" in md and "\\_hidden" in md
    assert "<img" not in md and "<script" not in md and "&lt;img src=x onerror=alert" in md
    html = (out / "report.html").read_text()
    assert "<img src=x" not in html and "<script" not in html and "$\\mathrm{x$" in html


def test_labels_as_sheets_write_them_info_and_benchmark_agree(env, tmp_path):
    """'lung' and 'lung' + zero-width space, 'côlon' in NFC and NFD: one class each; TCGA's
    missing markers are no class, the same in `info` and the benchmark's cohort."""
    from exprssl.evaluation.protocol import BenchmarkConfig, load_cohort

    root, _, _, _ = env
    data, _ = _small_cohort(root)
    values = ["lung", "lung\u200b", "côlon", "co\u0302lon", "[Not Available]", "[Discrepancy]"]
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "sample,L\n" + "".join(f"S{i},{values[i % 6]}\n" for i in range(40)), encoding="utf-8"
    )
    r = runner.invoke(app, ["info", str(data), "--sample-sheet", str(sheet)])
    assert r.exit_code == 0, r.output
    assert "label L (2 classes, 28 of 40 labelled): " in r.stdout and "lung: 14" in r.stdout, (
        r.stdout
    )
    assert "côlon: 14" in r.stdout
    assert "invisible (zero-width) characters, removed" in r.stderr
    cohort = load_cohort(BenchmarkConfig(data=str(data), labels=str(sheet), label="L"))
    assert sorted(cohort.classes) == ["côlon", "lung"] and cohort.n_missing == 12
    assert np.bincount(cohort.y[cohort.y >= 0]).tolist() == [14, 14]


def test_closed_pipe_ends_quietly():
    """`exprssl --help | head -n 1`, `exprssl methods | head -n 1`: the reader left; exit 0,
    nothing on stderr (was exit 1: typer's help console and rich's own handler exit 1)."""
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before anything is written: every write meets EPIPE
    try:  # all at once: each is a fresh interpreter
        runs = {
            args: subprocess.Popen(
                [sys.executable, "-c", "from exprssl.cli import main; main()", *args],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in CLOSED_PIPE_COMMANDS
        }
        ended = {args: (p.wait(timeout=120), p.stderr.read()) for args, p in runs.items()}
    finally:
        os.close(write_end)
    assert {args: e for args, e in ended.items() if e != (0, "")} == {}


def test_broken_pipe_that_is_not_stdout_is_an_error():
    """A BrokenPipeError from another pipe (a child's) is no closed stdout: one line, exit 2."""
    from exprssl.cli import user_errors

    @user_errors
    def writes_to_a_child():
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(typer.Exit) as ended:
        writes_to_a_child()
    assert ended.value.exit_code == 2
