"""Bad input through every command: exit 2, one line, no traceback, and nothing a user owns changed.

Table-driven: the file corpus of ``tests/bad_inputs.py`` runs through every command that reads
such a file, then bad option values, damaged model directories and output paths that would
replace or lose a user's files.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
import torch
from bad_inputs import bad_input_corpus, good_counts
from typer.testing import CliRunner

from exprssl.cli import app

runner = CliRunner()
with tempfile.TemporaryDirectory() as _d:
    CASES = sorted(bad_input_corpus(Path(_d)))


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes: what must not change."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


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
    r = runner.invoke(app, ["pretrain", "--method", "scarf", "--epochs", "1", "--data", str(good), "--out", str(model),
                            "--set", "hidden_dims=[16]", "--no-progress"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return root, corpus, good, model


def _commands(case, root: Path, model: Path):
    out = root / "out"
    if case.kind == "data":
        return [["info", case.path],
                ["pretrain", "--method", "scarf", "--data", case.path, "--out", out / "model"],
                ["embed", "--model", model, "--data", case.path, "--out", out / "e.h5ad"],
                ["benchmark", "--data", case.path, "--label", "x", "--out", out / "bench"]]
    if case.kind == "labels":
        return [["info", case.data, "--labels", case.path],
                ["embed", "--model", model, "--data", case.data, "--labels", case.path, "--out", out / "e.h5ad"],
                ["benchmark", "--data", case.data, "--labels", case.path, "--label", "x", "--out", out / "bench"]]
    return [["convert", case.path, "--out", out / "store.h5ad"]]


@pytest.mark.parametrize("name", CASES)
def test_bad_file_through_every_command(env, name):
    root, corpus, _, model = env
    case = corpus[name]
    for args in _commands(case, root, model):
        line = assert_refused(args, root, gone=[root / "out"])
        assert str(case.path) in line, (args, line)


@pytest.mark.parametrize("args,needle", [
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
])
def test_bad_option_values(env, args, needle):
    root, _, good, _ = env
    assert_refused(["pretrain", "--method", "scarf", "--data", good, "--out", root / "out" / "m", *args], root, needle,
                   gone=[root / "out"])


@pytest.mark.parametrize("yaml_text,needle", [
    ('epochs: "abc"', "epochs must be an integer"),
    ("preprocessing: 5", "preprocessing must be a mapping"),
    ("preprocessing: {foo: 1}", "foo"),
    ("temprature: 0.5", "temprature"),
    ("- a list", "mapping"),
    ("epochs: [1", "not valid YAML"),
    ("!!python/object/apply:os.system ['echo hacked']", "not valid YAML"),
])
def test_bad_config_files(env, tmp_path, yaml_text, needle):
    root, _, good, _ = env
    cfg = root / "cfg.yaml"
    cfg.write_text(f"method: scarf\ndata: {good}\nout: {root / 'out' / 'm'}\n" if not yaml_text.startswith(("-", "!"))
                   else "")
    cfg.write_text(cfg.read_text() + yaml_text + "\n")
    assert_refused(["pretrain", "--config", cfg], root, needle, gone=[root / "out"])
    cfg.unlink()


def test_benchmark_option_values(env):
    root, _, good, _ = env
    for args, needle in ((["--seeds", "0"], "seeds must be an integer >= 1"),
                         (["--splits", "0"], "splits must be an integer >= 1"),
                         (["--fractions", "0.5,2"], "2.0 is outside (0, 1]"),
                         (["--methods", "simclr"], "unknown method 'simclr'"),
                         (["--baselines", "svm"], "unknown baseline 'svm'"),
                         (["--protocol", "magic"], "protocol must be one of")):
        assert_refused(["benchmark", "--data", good, "--label", "x", "--out", root / "out" / "b", *args], root,
                       needle, gone=[root / "out"])


def _damaged_models(model: Path, root: Path) -> dict[str, Path]:
    import shutil

    cases = {}

    def copy(name: str) -> Path:
        p = root / "models" / name
        shutil.copytree(model, p)
        cases[name] = p
        return p

    (copy("truncated_weights") / "weights.pt").write_bytes((model / "weights.pt").read_bytes()[:200])
    (copy("random_weights") / "weights.pt").write_bytes(os.urandom(4096))
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

    torch.save({"x": Evil()}, copy("malicious_pickle") / "weights.pt")
    return cases


def test_damaged_model_directories(env):
    root, _, good, model = env
    for name, path in _damaged_models(model, root).items():
        line = assert_refused(["embed", "--model", path, "--data", good, "--out", root / "out" / "e.h5ad"], root,
                              gone=[root / "out"])
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
    pretrain = ["pretrain", "--method", "scarf", "--epochs", "1", "--set", "hidden_dims=[8]", "--no-progress"]
    assert_refused([*pretrain, "--data", user / "data.csv", "--out", user], root, "contains an input")
    assert_refused([*pretrain, "--data", good, "--out", user], root, "not an exprssl model directory")
    assert_refused([*pretrain, "--data", good, "--out", notes], root, "not an exprssl model directory")
    assert_refused([*pretrain, "--data", good, "--out", model], root, "--overwrite")
    assert_refused([*pretrain, "--data", good, "--out", notes / "sub"], root, "is a file")
    assert_refused([*pretrain, "--data", good, "--out", "/sys/exprssl-model"], root, "cannot write")
    cwd = os.getcwd()
    try:
        os.chdir(user)
        assert_refused([*pretrain, "--data", good, "--out", "."], root, "not an exprssl model directory")
    finally:
        os.chdir(cwd)
    assert_refused([*pretrain, "--data", good, "--out", model / "weights.pt"], root, "not an exprssl model")
    emb = root / "e.h5ad"
    r = runner.invoke(app, ["embed", "--model", str(model), "--data", str(good), "--out", str(emb)])
    assert r.exit_code == 0, r.output
    embed = ["embed", "--model", model, "--data"]
    assert_refused([*embed, emb, "--out", emb], root, "is an input")
    assert_refused([*embed, good, "--out", emb], root, "--overwrite")
    assert_refused([*embed, good, "--out", notes.with_suffix(".h5ad").parent / "p" / "x.txt"], root, ".h5ad")
    (user / "dir.h5ad").mkdir()
    assert_refused([*embed, good, "--out", user / "dir.h5ad"], root, "not an exprssl embedding")
    assert_refused(["benchmark", "--data", good, "--label", "x", "--out", notes], root, "not an exprssl benchmark")
    assert_refused(["benchmark", "--data", good, "--label", "x", "--out", user], root, "not an exprssl benchmark")
    assert_refused(["convert", good, "--out", notes], root, "not an exprssl expression store")
    r = runner.invoke(app, ["embed", "--model", str(model), "--data", str(good), "--out", str(emb), "--overwrite"])
    assert r.exit_code == 0, r.output  # an exprssl artefact of the same kind, replaced on request
