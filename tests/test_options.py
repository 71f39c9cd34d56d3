"""Method options and training options: typed, documented, checked in one place, one message
format."""

from __future__ import annotations

import dataclasses
import json

import pytest

from exprssl.encoders import DEFAULT_DROPOUT, DEFAULT_HIDDEN_DIMS, MLPEncoder, default_encoder
from exprssl.errors import ConfigError
from exprssl.methods import (
    EncoderOptions,
    available,
    build_method,
    check_method_params,
    describe_options,
    method_options,
)
from exprssl.options import describe
from exprssl.training import TrainConfig, check_hardware_options

# method -> (an option of its own with an out-of-range value, the message's requirement)
OUT_OF_RANGE = {
    "scarf": ("temperature", 0, "a finite number > 0"),
    "byol": ("tau", 1.0, r"a finite number in \[0, 1\)"),
    "vime": ("alpha", -1, "a finite number >= 0"),
    "barlow": ("lambd", 0.0, "a finite number > 0"),
    "mae": ("decoder_hidden", 0, "an integer >= 1"),
}


def test_every_method_is_covered():
    assert sorted(OUT_OF_RANGE) == available()


@pytest.mark.parametrize("name", available())
def test_options_dataclass_defaults_and_json(name):
    cls = method_options(name)
    assert dataclasses.is_dataclass(cls) and issubclass(cls, EncoderOptions)
    assert cls.__module__ == f"exprssl.methods.{name}"  # declared in the method's own file
    params = check_method_params(name, None)
    assert params == dataclasses.asdict(cls()) and json.loads(json.dumps(params)) == params
    assert params["hidden_dims"] == [256, 256, 256, 256] and params["dropout"] == 0.2
    assert params["corruption_rate"] == 0.3  # one spelling across methods
    assert {"replacement", "corruption_mode"} <= set(params)
    assert check_method_params(name, params) == params  # idempotent: a saved config revalidates


@pytest.mark.parametrize("name", available())
def test_options_refuse_unknown_wrong_type_and_out_of_range(name):
    with pytest.raises(
        ConfigError, match=rf"^{name}: unknown option\(s\) bogus; accepted: .*corruption_rate"
    ):
        check_method_params(name, {"bogus": 1})
    with pytest.raises(
        ConfigError,
        match=rf"^{name}: corruption_rate must be a finite number in \(0, 1\), "
        r"got 'abc'$",
    ):
        check_method_params(name, {"corruption_rate": "abc"})
    for rate in (0, 1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="corruption_rate must be a finite number in"):
            check_method_params(name, {"corruption_rate": rate})
    with pytest.raises(
        ConfigError,
        match=rf"^{name}: replacement must be one of 'marginal', 'uniform', "
        r"'batch_permute', 'zero', got 'noise'$",
    ):
        check_method_params(name, {"replacement": "noise"})
    with pytest.raises(
        ConfigError, match=rf"^{name}: corruption_mode must be one of 'fixed', 'bernoulli'"
    ):
        check_method_params(name, {"corruption_mode": 3})
    with pytest.raises(
        ConfigError,
        match=rf"^{name}: hidden_dims must be a non-empty list of integers >= 1, "
        r"got 'abc'$",
    ):
        check_method_params(name, {"hidden_dims": "abc"})
    for dims in ([], [64, 0], [64, 1.5], 64, [True]):
        with pytest.raises(
            ConfigError, match="hidden_dims must be a non-empty list of integers >= 1"
        ):
            check_method_params(name, {"hidden_dims": dims})
    with pytest.raises(
        ConfigError, match=rf"^{name}: dropout must be a finite number in \[0, 1\), got 1$"
    ):
        check_method_params(name, {"dropout": 1})
    option, value, requirement = OUT_OF_RANGE[name]
    with pytest.raises(
        ConfigError, match=rf"^{name}: {option} must be {requirement}, got {value!r}$"
    ):
        build_method(name, 10, **{option: value})


def test_values_are_coerced_where_unambiguous():
    p = check_method_params(
        "scarf",
        {
            "temperature": "1e-1",
            "proj_dim": 64.0,
            "hidden_dims": (32, 16),
            "corruption_rate": 1 / 2,
        },
    )
    assert p["temperature"] == 0.1 and p["proj_dim"] == 64 and p["hidden_dims"] == [32, 16]
    assert isinstance(p["proj_dim"], int) and isinstance(p["temperature"], float)
    with pytest.raises(ConfigError, match="proj_dim must be an integer >= 1, got 64.5"):
        check_method_params("scarf", {"proj_dim": 64.5})
    with pytest.raises(ConfigError, match="two_views must be true or false, got 'yes'"):
        check_method_params("scarf", {"two_views": "yes"})
    with pytest.raises(ConfigError, match="temperature must be a finite number > 0, got True"):
        check_method_params("scarf", {"temperature": True})  # a boolean is never a number


@pytest.mark.parametrize("name", ["vime", "mae"])
def test_old_mask_rate_name_still_loads(name):
    """Models saved before the rename have mask_rate in config.json's method_config."""
    assert check_method_params(name, {"mask_rate": 0.5})["corruption_rate"] == 0.5
    assert "mask_rate" not in check_method_params(name, {"mask_rate": 0.5})
    assert build_method(name, 10, hidden_dims=[8], mask_rate=0.4).corruptor.rate == 0.4
    assert (
        check_method_params(name, {"mask_rate": 0.5, "corruption_rate": 0.5})["corruption_rate"]
        == 0.5
    )
    with pytest.raises(
        ConfigError, match=f"^{name}: give corruption_rate or its old name mask_rate, not both$"
    ):
        check_method_params(name, {"mask_rate": 0.5, "corruption_rate": 0.3})
    with pytest.raises(ConfigError, match="corruption_rate must be"):
        check_method_params(name, {"mask_rate": 2})
    with pytest.raises(ConfigError, match="unknown option"):
        check_method_params("scarf", {"mask_rate": 0.5})  # scarf never had it


def test_options_must_be_a_mapping():
    with pytest.raises(
        ConfigError, match="^scarf: options must be a mapping of name: value, got 5$"
    ):
        check_method_params("scarf", 5)
    with pytest.raises(
        ConfigError, match="^training: options must be a mapping of name: value, got"
    ):
        TrainConfig.from_dict([("epochs", 3)])


def test_unknown_method_and_typo_hint():
    with pytest.raises(
        ConfigError, match="unknown method 'simclr'; available: barlow, byol, mae, scarf, vime"
    ):
        check_method_params("simclr", {})
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) temprature \(did you mean temperature\?\)"
    ):
        check_method_params("scarf", {"temprature": 0.5})


@pytest.mark.parametrize("name", available())
def test_describe_options(name):
    rows = describe_options(name)
    assert [r["name"] for r in rows] == list(check_method_params(name))  # declaration order
    assert all(set(r) == {"name", "type", "default", "help", "allowed"} for r in rows)
    assert all(r["help"] and "\n" not in r["help"] for r in rows)
    by_name = {r["name"]: r for r in rows}
    assert by_name["hidden_dims"] == {
        "name": "hidden_dims",
        "type": "list[int]",
        "default": [256] * 4,
        "help": by_name["hidden_dims"]["help"],
        "allowed": ">= 1",
    }
    assert (
        by_name["corruption_rate"]["type"] == "float"
        and by_name["corruption_rate"]["allowed"] == "in (0, 1)"
    )
    assert by_name["replacement"]["allowed"] == "marginal, uniform, batch_permute, zero"
    json.dumps(rows)


def test_paper_terms_named_in_help():
    helps = {name: {r["name"]: r["help"] for r in describe_options(name)} for name in available()}
    assert "p_m" in helps["vime"]["corruption_rate"] and "c" in helps["scarf"]["corruption_rate"]
    assert "lambda" in helps["barlow"]["lambd"] and "alpha" in helps["vime"]["alpha"]


def test_default_encoder_defined_once():
    assert default_encoder() == {
        "hidden_dims": list(DEFAULT_HIDDEN_DIMS),
        "dropout": DEFAULT_DROPOUT,
    }
    assert default_encoder() is not default_encoder()  # a fresh dict: callers may edit theirs
    enc = MLPEncoder(50)
    assert enc.out_dim == DEFAULT_HIDDEN_DIMS[-1] and len(DEFAULT_HIDDEN_DIMS) == 4
    assert {
        k: check_method_params("scarf")[k] for k in ("hidden_dims", "dropout")
    } == default_encoder()


# ------------------------------------------------------------------------------ TrainConfig
@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"accelerator": "tpu"},
            "training: accelerator must be one of 'auto', 'cpu'.* "
            r"\(available on this machine\), got 'tpu'",
        ),
        ({"accelerator": "quantum"}, "accelerator must be one of 'auto', 'cpu'"),
        ({"precision": "bogus"}, "training: precision must be one of '.*'32-true'.*, got 'bogus'"),
        ({"strategy": "bogus"}, "training: strategy must be one of 'auto', 'ddp', .*, got 'bogus'"),
        ({"epochs": "abc"}, "training: epochs must be an integer >= 1, got 'abc'"),
        ({"epochs": 0}, "training: epochs must be an integer >= 1, got 0"),
        ({"epochs": 2.5}, "training: epochs must be an integer >= 1, got 2.5"),
        ({"lr": -1}, r"training: lr must be a finite number in \(0, 10\], got -1"),
        ({"lr": 1e30}, r"training: lr must be a finite number in \(0, 10\], got 1e\+30"),
        ({"lr": "fast"}, r"training: lr must be a finite number in \(0, 10\], got 'fast'"),
        ({"lr": float("inf")}, r"lr must be a finite number in \(0, 10\], got inf"),
        ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0, got -0.1"),
        ({"val_fraction": 1}, r"val_fraction must be a finite number in \[0, 1\), got 1"),
        ({"patience": -1}, "patience must be an integer >= 0, got -1"),
        ({"num_workers": -2}, r"num_workers must be an integer in \[0, 256\], got -2"),
        ({"batch_size": 1}, "batch_size must be an integer >= 2, got 1"),
        ({"seed": -1}, r"seed must be an integer in \[0, 4294967295\], got -1"),
        ({"num_nodes": 0}, "num_nodes must be an integer >= 1, got 0"),
        (
            {"optimizer": "nadam"},
            "optimizer must be one of 'adam', 'adamw', 'sgd', 'rmsprop', got 'nadam'",
        ),
        (
            {"devices": 0},
            r"devices must be 'auto', a number of devices \(>= 1, or -1 for all\) or a list",
        ),
        ({"devices": "gpu0"}, "devices must be 'auto', a number of devices"),
        ({"progress": "no"}, "progress must be true or false, got 'no'"),
        ({"log_dir": 5}, "log_dir must be a directory path, got 5"),
        (
            {"epocs": 3},
            r"training: unknown option\(s\) epocs \(did you mean epochs\?\); accepted: "
            "accelerator, batch_size, devices, epochs, ",
        ),
    ],
)
def test_train_config_refuses(options, message):
    message = "^training: " + message.removeprefix("training: ")
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(options)
    if "epocs" not in options:  # the same check through the dataclass (SSLModel's path)
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**options).validate()


def test_train_config_errors_are_one_line():
    for bad in ({"strategy": "bogus"}, {"precision": "bogus"}, {"accelerator": "tpu"}):
        with pytest.raises(ConfigError) as e:
            TrainConfig.from_dict(bad)
        assert "\n" not in str(e.value)


def test_train_config_coerces_yaml_values():
    """YAML 1.1 reads `lr: 1e-3` as a string, and `precision: 16` as an int."""
    cfg = TrainConfig.from_dict(
        {
            "lr": "1e-3",
            "epochs": "5",
            "weight_decay": 0,
            "precision": 16,
            "devices": "0,1",
            "optimizer": "AdamW",
            "accelerator": "CPU",
            "log_dir": None,
        }
    )
    assert cfg.lr == 0.001 and cfg.epochs == 5 and isinstance(cfg.epochs, int)
    assert cfg.weight_decay == 0.0 and isinstance(cfg.weight_decay, float)
    assert cfg.precision == "16" and cfg.devices == [0, 1] and cfg.optimizer == "adamw"
    assert cfg.accelerator == "cpu"
    assert TrainConfig.from_dict({"devices": "2"}).devices == 2
    assert TrainConfig.from_dict({"devices": -1}).devices == -1
    assert TrainConfig.from_dict({"precision": "bf16-mixed", "strategy": "ddp"}).strategy == "ddp"
    assert TrainConfig.from_dict(None) == TrainConfig()
    cfg = TrainConfig(lr="1e-2", epochs="3")
    assert cfg.validate() is cfg and (cfg.lr, cfg.epochs) == (0.01, 3)  # normalised in place
    assert json.loads(json.dumps(TrainConfig().to_dict())) == TrainConfig().to_dict()


def test_train_config_describe():
    rows = describe(TrainConfig)
    assert [r["name"] for r in rows] == [f.name for f in dataclasses.fields(TrainConfig)]
    lr = next(r for r in rows if r["name"] == "lr")
    assert lr["type"] == "float | None" and lr["default"] is None and lr["allowed"] == "in (0, 10]"
    assert all(r["help"] for r in rows)


def test_lightning_judges_the_hardware_combination():
    check_hardware_options(TrainConfig(accelerator="cpu"))
    with pytest.raises(
        ConfigError,
        match=r"^training: Lightning refused accelerator='cpu', devices=\[0, 1\], "
        r"strategy='auto', precision=None: `devices` selected with",
    ):
        check_hardware_options(TrainConfig(accelerator="cpu", devices=[0, 1]).validate())


def test_every_options_class_has_one_validator_and_one_message_format():
    """Methods, training, fine-tuning heads, preprocessing and the benchmark config: a wrong
    type and an out-of-range value give the same one-line ``where: name must be ..., got ...``."""
    import re

    import exprssl.evaluation.config  # noqa: F401  (declares BenchmarkConfig)
    import exprssl.evaluation.heads  # noqa: F401
    import exprssl.preprocessing  # noqa: F401
    from exprssl.options import _fields, options_classes, validate_options

    classes = options_classes()
    wheres = set(classes.values())
    assert {"training", "finetune", "preprocessing", "benchmark", *available()} <= wheres
    for cls, where in classes.items():
        checked = 0
        for f in _fields(cls):
            if f.type not in (int, float) or f.spec.parse is not None:
                continue
            s = f.spec
            outside = (
                s.ge - 1
                if s.ge is not None
                else s.gt
                if s.gt is not None
                else s.le + 1
                if s.le is not None
                else s.lt
                if s.lt is not None
                else None
            )
            for value in ("abc", outside):
                if value is None:
                    continue
                with pytest.raises(ConfigError) as e:
                    validate_options(cls, {f.name: value}, where)
                pattern = (
                    rf"{re.escape(where)}: {f.name} must be [^\n]+, got {re.escape(repr(value))}"
                )
                assert re.fullmatch(pattern, str(e.value)), str(e.value)
            checked += 1
        assert checked, f"{cls.__name__} has no bounded number to check"
