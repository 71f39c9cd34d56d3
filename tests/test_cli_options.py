"""The CLI and the options classes cannot drift: every ``BenchmarkConfig`` / ``TrainConfig``
field has exactly one flag showing the field's help and default, every flag maps to a field or
is a declared CLI-only one, and every command's ``--help`` says each option's default or that
it is required (issues 26 and 27)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import typer
import yaml
from rich.text import Text
from typer.testing import CliRunner

import exprssl
from exprssl import cli
from exprssl.cli import app
from exprssl.evaluation.config import BenchmarkConfig
from exprssl.flags import comma_list, stated_default
from exprssl.options import option_fields
from exprssl.training import TrainConfig

runner = CliRunner()

# flags of the command that set no field: where a config comes from, how the run looks, and
# shortcuts into a mapping field (--top-genes: preprocessing's top_k_variance)
CLI_ONLY = {
    "benchmark": {"help", "config", "top_genes", "progress", "dry_run"},
    "pretrain": {
        "help",
        "method",
        "data",
        "out",
        "top_genes",
        "set_",
        "config",
        "orientation",
        "layer",
        "stream",
        "overwrite",
    },
}
COMMANDS = {
    "benchmark": (BenchmarkConfig, cli.BENCHMARK_FLAGS),
    "pretrain": (TrainConfig, cli.TRAIN_FLAGS),
}


def _params(name: str) -> list:
    cmd = typer.main.get_command(app).commands[name]
    return cmd.get_params(cmd.context_class(cmd))


def _plain(markup: str) -> str:
    return Text.from_markup(markup).plain


def _flag_type(tp) -> type:
    """The flag type a field's annotation calls for (a mapping: dict; a union: str)."""
    if typing.get_origin(tp) is dict:
        return dict
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        return str
    return tp


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_field_has_one_flag_with_its_help_and_default(command):
    cls, flags = COMMANDS[command]
    params = _params(command)
    fields = {f.name: f for f in option_fields(cls)}
    assert set(flags) == set(fields) == {f.name for f in dataclasses.fields(cls)}
    for name, field in fields.items():
        [p] = [p for p in params if p.name == name]  # exactly one flag
        assert p.default is None, name  # an absent flag leaves --config's value alone
        assert flags[name].type == _flag_type(field.type), name
        help_ = _plain(p.help)
        meaning = stated_default(field.spec.help)[0] if field.default is None else field.spec.help
        assert help_.startswith(meaning), (name, help_)
        shown = re.search(r"\[(default: (.*)|required)\]$", help_)
        assert shown, (name, help_)
        if flags[name].required:
            assert shown.group(1) == "required" and name in ("data", "label", "out")
            continue
        _assert_default_reads_back(name, field, p, shown.group(2))
    for p in params:
        assert p.name in fields or p.name in CLI_ONLY[command], f"--{p.name} sets no field"


def _assert_default_reads_back(name, field, param, text):
    """The shown default, read as the flag reads a value, is the field's default."""
    value = field.default
    if value is None:  # the meaning of None the field's help states, else 'none'
        assert text == (stated_default(field.spec.help)[1] or "none"), name
    elif isinstance(value, bool):
        assert text == (param.opts[0] if value else param.secondary_opts[0]), name
    elif isinstance(value, dict):
        assert yaml.safe_load(text) == value, name
    elif isinstance(value, list):
        assert (comma_list(text) if value else []) == [str(v) for v in value], name
        assert text != "none" or not value
    else:
        assert type(value)(text) == value, name


def test_flags_reach_the_config_and_config_values_survive_absent_flags(tmp_path, monkeypatch):
    """Flag values are converted (comma lists, repeats, YAML mappings, --inductive) and win
    over --config; a field whose flag is absent keeps the file's value."""
    ran = {}
    monkeypatch.setattr(cli, "_run_benchmark", lambda cfg, progress: ran.update(cfg=cfg))
    config = tmp_path / "b.yaml"
    config.write_text("epochs: 7\nseeds: 4\nlabel: from_file\n")
    r = runner.invoke(
        app,
        [
            "benchmark", "--config", str(config), "--data", "all_leukemia", "--out", "o",
            "--label", "mol.biol", "--fractions", "0.5,1", "--model", "a", "--model", "b",
            "--split", "{train: 0.75, test: 0.25}", "--inductive", "--no-tune", "--epochs", "3",
            "--methods", "scarf,vime", "--sample-sheet", "s.csv", "--devices", "0,1",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    cfg = ran["cfg"]
    assert (cfg.label, cfg.epochs, cfg.seeds) == ("mol.biol", 3, 4)
    assert cfg.fractions == [0.5, 1.0] and cfg.models == ["a", "b"]
    assert cfg.split == {"train": 0.75, "test": 0.25} and cfg.methods == ["scarf", "vime"]
    assert (cfg.transductive, cfg.tune, cfg.labels, cfg.devices) == (False, False, "s.csv", "0,1")
    assert cfg.batch_size == BenchmarkConfig().batch_size  # neither flag nor file: the default


def test_bad_flag_values_are_one_line(tmp_path):
    base = ["benchmark", "--data", "all_leukemia", "--label", "mol.biol", "--out", "o"]
    for args, needle in (
        (["--fractions", "a,b"], "could not parse 'a,b' as a comma-separated list of numbers"),
        (["--fractions", ","], "lists nothing"),
        (["--split", "{train: [0.5"], "--split: not valid YAML"),
        (["--encoder", "7"], "encoder must be a mapping"),
    ):
        r = runner.invoke(app, [*base, *args, "--dry-run"])
        errors = [x for x in r.output.splitlines() if x.startswith("exprssl: error:")]
        assert r.exit_code == 2 and len(errors) == 1 and needle in errors[0], (args, r.output)
    r = runner.invoke(app, ["benchmark", "--label", "x", "--out", "o"])
    assert (
        r.exit_code == 2 and "--data is required (on the command line or in --config)" in r.output
    )


def test_pretrain_flags_reach_the_model(monkeypatch, tmp_path):
    """TrainConfig's flags (--log-dir and --accelerator are new) reach SSLModel, --progress too."""
    import exprssl.model

    seen = {}

    class Stop(Exception):
        pass

    def fake_model(name, **kwargs):
        seen.update(kwargs, name=name)
        raise Stop

    monkeypatch.setattr(exprssl.model, "SSLModel", fake_model)
    args = ["pretrain", "-m", "scarf", "-d", "all_leukemia", "-o", "m", "--epochs", "2"]
    args += ["--no-progress", "--log-dir", "logs", "--accelerator", "cpu", "--set", "dropout=0.1"]
    with pytest.raises(Stop):
        runner.invoke(app, args, catch_exceptions=False, env={"EXPRSSL_DEBUG": "1"})
    assert seen["name"] == "scarf" and seen["method_params"] == {"dropout": 0.1}
    assert (seen["epochs"], seen["progress"], seen["log_dir"], seen["accelerator"]) == (
        2,
        False,
        "logs",
        "cpu",
    )
    assert "lr" not in seen  # not given: the method's own
    config = tmp_path / "p.yaml"  # progress from the file alone (was passed to SSLModel twice)
    config.write_text("progress: false\nepochs: 9\n")
    with pytest.raises(Stop):
        runner.invoke(
            app, [*args[:7], "-c", str(config)], catch_exceptions=False, env={"EXPRSSL_DEBUG": "1"}
        )
    assert (seen["epochs"], seen["progress"]) == (9, False)


def test_labels_is_a_deprecated_alias_of_sample_sheet(monkeypatch):
    ran = {}
    monkeypatch.setattr(cli, "_run_benchmark", lambda cfg, progress: ran.update(cfg=cfg))
    base = ["benchmark", "--data", "all_leukemia", "--label", "mol.biol", "--out", "o"]
    for args in (["--labels", "s.csv"], ["--labels=s.csv"]):
        r = runner.invoke(app, [*base, *args])
        assert r.exit_code == 0, r.output
        assert ran.pop("cfg").labels == "s.csv"
        warned = [x for x in r.stderr.splitlines() if x.startswith("exprssl: warning:")]
        assert warned == [
            "exprssl: warning: --labels is deprecated: use --sample-sheet (--labels differs "
            "from --label, the column to predict, by one letter); --labels goes in 0.5"
        ]
    r = runner.invoke(app, [*base, "--sample-sheet", "s.csv"])
    assert "warning" not in r.stderr and ran["cfg"].labels == "s.csv"
    r = runner.invoke(app, ["benchmark", "--help"])
    assert "--labels " not in r.output  # the old name is not offered
    args = [Path("x"), "--labels", "s", "--", "--labels"]  # a Path, and a value after --
    assert cli.renamed_flags(args, {"--sample-sheet"}) == (
        [Path("x"), "--sample-sheet", "s", "--", "--labels"],
        ["--labels"],
    )
    assert cli.renamed_flags(["--labels", "s"], {"--label"}) == (["--labels", "s"], [])


@pytest.mark.parametrize("command", sorted(typer.main.get_command(app).commands))
def test_help_shows_every_options_default_or_that_it_is_required(command):
    """Read as a user reads it: in `exprssl COMMAND --help`, each option's row says
    ``[default: ...]`` or ``[required]``; a bool flag's default is the flag in effect
    (``[default: --progress]``, not ``[default: progress]``)."""
    r = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    params = [p for p in _params(command) if p.name != "help"]
    rows = _help_rows(
        r.output, {p.opts[0] if p.opts[0].startswith("-") else p.name for p in params}
    )
    assert len(rows) == len(params), (sorted(rows), params)
    for p in params:
        row = rows[p.opts[0] if p.opts[0].startswith("-") else p.name]
        assert "[default: " in row or "[required]" in row, (command, row)
        if getattr(p, "secondary_opts", None) and isinstance(p.default, bool):
            assert "[default: --" in row, (command, row)
    if command in COMMANDS:
        for name in ("--data", "--out"):
            assert "[required]" in rows[name], rows[name]


def _help_rows(text: str, names: set[str]) -> dict[str, str]:
    """Each option's (or argument's) row of rich's help boxes, continuation lines joined."""
    rows: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        cells = [c for c in line.strip("│ ").split() if c != "*"] if line.startswith("│") else []
        if not cells:
            current = None
        elif cells[0] in names:
            current = cells[0]
            rows[current] = line
        elif cells[0] == "--help":
            current = None
        elif current is not None:
            rows[current] += " " + line
    return rows


def test_version_and_help_do_not_import_torch():
    """`exprssl --version` prints the version; the options classes (and torch) are imported
    only when a command's help is shown or it runs."""
    code = (
        "import sys\nfrom exprssl.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["exprssl", exprssl.__version__, "False"]
