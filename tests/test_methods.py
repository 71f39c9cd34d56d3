"""Registry, per-method contract and loss parts, BYOL's EMA, VIME's mask target."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from exprssl.errors import ConfigError, TrainingDivergedError
from exprssl.losses import LossOutput
from exprssl.methods import available, build_method, check_method_params
from exprssl.methods.byol import cosine_tau, ema_update
from exprssl.training import EpochMeans, TrainConfig, check_finite_weights, train_method


def test_registry_lists_the_five_methods():
    assert available() == ["barlow", "byol", "mae", "scarf", "vime"]
    with pytest.raises(
        ConfigError, match="unknown method 'simclr'; available: barlow, byol, mae, scarf, vime"
    ):
        build_method("simclr", 10)
    with pytest.raises(
        ConfigError,
        match=r"^scarf: unknown option\(s\) temprature \(did you mean temperature\?\); "
        "accepted: corruption_mode, corruption_rate, dropout, hidden_dims, ",
    ):
        build_method("scarf", 10, temprature=0.5)
    with pytest.raises(
        ConfigError, match=r"^scarf: temperature must be a finite number > 0, got 0$"
    ):
        build_method("scarf", 10, temperature=0)  # checked before anything is built


def test_default_encoder_is_the_papers():
    m = build_method("scarf", 100)
    linears = [layer for layer in m.encoder if isinstance(layer, torch.nn.Linear)]
    assert [layer.out_features for layer in linears] == [256] * 4 and m.encoder.out_dim == 256
    assert any(isinstance(layer, torch.nn.Dropout) and layer.p == 0.2 for layer in m.encoder)
    assert m.config["temperature"] == 1.0 and m.config["corruption_rate"] == 0.3


@pytest.mark.parametrize("name", ["scarf", "byol", "vime", "barlow", "mae"])
def test_method_contract(name):
    torch.manual_seed(0)
    m = build_method(name, 40, hidden_dims=[32, 16])
    X = torch.randn(64, 40)
    m.fit_augmentations(X)
    out = m.loss(X[:16])
    assert isinstance(out, LossOutput)
    assert out.total.ndim == 0 and torch.isfinite(out.total)
    out.total.backward()
    assert m.encoder[0].weight.grad is not None and m.encoder[0].weight.grad.abs().sum() > 0
    assert m.embed(X[:5]).shape == (5, 16)
    torch.manual_seed(1)
    l1 = m.loss(X[:16]).total
    torch.manual_seed(1)
    l2 = m.loss(X[:16]).total
    assert l1.item() == l2.item()  # seeded forward is reproducible
    json.dumps(m.config)  # saved with the model as config.json
    assert m.config == check_method_params(name, {"hidden_dims": [32, 16]})


# what each loss is made of: parts (logged as train_/val_<part>) and metrics (train_<metric>)
LOSS_PARTS = {
    "scarf": ({"nt_xent"}, set()),
    "byol": (set(), {"tau"}),
    "vime": ({"mask_bce", "recon_mse"}, set()),
    "barlow": ({"on_diag", "off_diag"}, set()),
    "mae": ({"masked_mse", "unmasked_mse"}, set()),
}


@pytest.mark.parametrize("name", sorted(LOSS_PARTS))
def test_loss_parts_add_up(name):
    torch.manual_seed(0)
    m = build_method(name, 30, hidden_dims=[16], dropout=0.0)
    X = torch.randn(32, 30)
    m.fit_augmentations(X)
    out = m.loss(X)
    parts, metrics = LOSS_PARTS[name]
    assert set(out.parts) == parts and set(out.metrics) == metrics
    assert all(not v.requires_grad and v.ndim == 0 for v in out.parts.values())
    p, o = out.parts, m.options
    expected = {
        "scarf": lambda: p["nt_xent"],
        "byol": lambda: out.total,
        "vime": lambda: p["mask_bce"] + o.alpha * p["recon_mse"],
        "barlow": lambda: p["on_diag"] + o.lambd * p["off_diag"],
        "mae": lambda: p["masked_mse"] + o.unmasked_weight * p["unmasked_mse"],
    }[name]()
    assert out.total.item() == pytest.approx(float(expected.detach()), rel=1e-6)
    if name == "byol":
        assert out.metrics["tau"] == 0.99


def test_ema_update_exact():
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    w_o, w_t = online.weight.detach().clone(), target.weight.detach().clone()
    ema_update(online, target, 0.9)
    torch.testing.assert_close(target.weight, 0.9 * w_t + 0.1 * w_o)


def test_cosine_tau_schedule():
    assert cosine_tau(0.99, 0, 100) == pytest.approx(0.99)
    assert cosine_tau(0.99, 100, 100) == pytest.approx(1.0)
    assert cosine_tau(0.99, 50, 100) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)


def test_byol_target_is_ema_only():
    m = build_method(
        "byol", 20, hidden_dims=[16], proj_hidden=32, proj_dim=8, tau=0.9, ema_schedule="fixed"
    )
    m.fit_augmentations(torch.randn(32, 20))
    assert all(not p.requires_grad for p in m.target_encoder.parameters())
    assert {id(p) for p in m.trainable_parameters()}.isdisjoint(
        {id(p) for p in m.target_encoder.parameters()}
    )
    before_t = m.target_encoder[0].weight.detach().clone()
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.5)
    m.loss(torch.randn(16, 20)).total.backward()
    opt.step()
    assert torch.equal(m.target_encoder[0].weight, before_t)  # gradients never touch the target
    m.on_train_batch_end(1, 10)
    torch.testing.assert_close(
        m.target_encoder[0].weight, 0.9 * before_t + 0.1 * m.encoder[0].weight.detach()
    )


def test_vime_mask_target_is_changed_entries(monkeypatch):
    m = build_method("vime", 6, hidden_dims=[8])
    x = torch.tensor([[1.0, 1.0, 2.0, 3.0, 0.0, 0.0], [1.0, 1.0, 2.0, 5.0, 0.0, 7.0]])
    seen = {}

    def fake_loss(mask_logits, mask_target, recon, x_orig, alpha):
        seen["target"] = mask_target
        return LossOutput(recon.sum() * 0)

    import exprssl.methods.vime as vime_mod

    monkeypatch.setattr(vime_mod, "vime_loss", fake_loss)
    torch.manual_seed(0)
    x_c, mask = m.corruptor(x)
    torch.manual_seed(0)
    m.loss(x)
    assert torch.equal(seen["target"], x_c != x)
    # batch_permute on columns with equal values: selected but unchanged entries are not targets
    assert (mask & ~seen["target"]).any()


def test_mae_reconstructs_original_on_masked_entries():
    torch.manual_seed(0)
    m = build_method("mae", 30, hidden_dims=[64], decoder_hidden=64, dropout=0.0)
    X = torch.randn(256, 8) @ torch.randn(8, 30)  # low-rank: masked genes are predictable
    opt = torch.optim.Adam(m.trainable_parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = m.loss(X).total
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


# ---------------------------------------------------------------- training: history and divergence
SMALL = {
    "scarf": {},
    "byol": {"proj_hidden": 16, "proj_dim": 8},
    "vime": {},
    "barlow": {"proj_hidden": 16, "proj_dim": 16},
    "mae": {"decoder_hidden": 16},
}


def _tiny_data(n=48, d=20, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


@pytest.mark.parametrize("name", sorted(LOSS_PARTS))
def test_history_records_every_loss_part(name):
    torch.manual_seed(0)
    m = build_method(name, 20, hidden_dims=[8], **SMALL[name])
    history = train_method(
        m,
        _tiny_data(),
        TrainConfig(epochs=2, batch_size=16, val_fraction=0.25, patience=0, progress=False),
    )
    parts, metrics = LOSS_PARTS[name]
    expected = (
        ["epoch", "train_loss", "val_loss"]
        + [f"train_{p}" for p in sorted(parts)]
        + [f"val_{p}" for p in sorted(parts)]
        + [f"train_{k}" for k in metrics]
        + ["emb_std", "eff_rank"]
    )
    assert len(history) == 2
    for rec in history:
        assert sorted(rec) == sorted(expected)
        assert all(math.isfinite(v) for v in rec.values())
    if name == "scarf":  # the one part is the whole loss
        assert history[-1]["train_nt_xent"] == pytest.approx(history[-1]["train_loss"])
    if name == "byol":  # the epoch mean of the EMA decay, rising from 0.99 towards 1
        assert 0.99 <= history[0]["train_tau"] < history[1]["train_tau"] < 1


def test_history_without_validation_keeps_the_columns():
    m = build_method("vime", 20, hidden_dims=[8])
    rec = train_method(
        m, _tiny_data(), TrainConfig(epochs=1, batch_size=16, val_fraction=0.0, progress=False)
    )[0]
    assert (
        math.isnan(rec["val_loss"])
        and math.isnan(rec["val_mask_bce"])
        and math.isfinite(rec["train_mask_bce"])
    )


def test_epoch_means_are_weighted_and_sync_once():
    acc = EpochMeans()
    acc.add({"loss": torch.tensor(1.0), "tau": 0.5}, 3)
    acc.add({"loss": torch.tensor(3.0), "tau": 1.0}, 1)
    assert acc.means() == {"tau": pytest.approx(0.625), "loss": pytest.approx(1.5)}
    assert acc.means() == {}  # reset


def test_huge_learning_rate_stops_with_diverged_error():
    """`--lr 10` with SGD on unscaled data: the run stops with a one-line hint, no weights come
    back."""
    torch.manual_seed(0)
    m = build_method("mae", 20, hidden_dims=[16])
    with pytest.raises(
        TrainingDivergedError,
        match=r"^mae: training diverged at epoch \d+ \(.*\); lower the "
        r"learning rate \(now 10\) or check the input scale",
    ):
        train_method(
            m,
            _tiny_data(n=40) * 100,
            TrainConfig(
                epochs=5, batch_size=16, lr=10, optimizer="sgd", val_fraction=0.25, progress=False
            ),
        )


def test_nan_validation_loss_is_not_swallowed_by_early_stopping():
    """Lightning's EarlyStopping stops quietly on a NaN monitor and the weights were kept: the
    run must fail instead (here the eval-mode network breaks while the training loss is fine)."""
    m = build_method("scarf", 20, hidden_dims=[8])
    train_loss = m.loss
    m.loss = lambda x: train_loss(x) if m.training else LossOutput(torch.tensor(float("nan")))
    with pytest.raises(
        TrainingDivergedError,
        match=r"^scarf: training diverged at epoch 1 \(the validation "
        r"loss is nan\); lower the learning rate \(now 0.001\)",
    ):
        train_method(
            m,
            _tiny_data(),
            TrainConfig(epochs=3, batch_size=16, val_fraction=0.25, patience=5, progress=False),
        )


def test_nan_training_loss_and_overflowing_embeddings_stop_training():
    X = _tiny_data()
    X[5, 3] = float("nan")
    with pytest.raises(TrainingDivergedError, match=r"\(the training loss is nan\)"):
        train_method(
            build_method("vime", 20, hidden_dims=[8]),
            X,
            TrainConfig(epochs=2, batch_size=16, val_fraction=0.0, progress=False),
        )
    m = build_method("scarf", 20, hidden_dims=[8])
    m.embed = lambda x: torch.full(
        (x.shape[0], 8), 1e30
    )  # finite, but squared norms overflow float32
    with pytest.raises(TrainingDivergedError, match=r"\(the largest embedding value is 1e\+30\)"):
        train_method(
            m, _tiny_data(), TrainConfig(epochs=2, batch_size=16, val_fraction=0.0, progress=False)
        )


def test_non_finite_weights_are_never_returned():
    m = build_method("barlow", 20, hidden_dims=[8])
    check_finite_weights(m)
    with torch.no_grad():
        m.encoder[1].running_var[0] = float("inf")
    with pytest.raises(
        TrainingDivergedError,
        match=r"^barlow: training diverged: non-finite weights in "
        r"encoder.1.running_var; lower the learning rate",
    ):
        check_finite_weights(m)


@pytest.mark.parametrize("precision", ["64-true", "bf16-true"])
def test_true_precisions_train_and_return_float32_weights(precision):
    """Lightning converts the weights and batches; the collapse monitor's rows must follow, and
    the trained method comes back in float32 for embedding and saving."""
    m = build_method("scarf", 20, hidden_dims=[8])
    history = train_method(
        m,
        _tiny_data(),
        TrainConfig(
            epochs=1, batch_size=16, precision=precision, accelerator="cpu", progress=False
        ),
    )
    assert math.isfinite(history[0]["eff_rank"])
    assert all(t.dtype == torch.float32 for t in m.state_dict().values() if t.is_floating_point())
    assert m.embed(_tiny_data(n=4)).dtype == torch.float32


def test_a_new_method_is_one_class_with_its_options(monkeypatch):
    """What a contributor writes in methods/<name>.py: options dataclass, @register, loss."""
    from dataclasses import dataclass

    import exprssl.methods as methods_pkg
    from exprssl.methods import EncoderOptions, SSLMethod, describe_options, register
    from exprssl.methods.options import option

    monkeypatch.setattr(
        methods_pkg, "METHODS", dict(methods_pkg.METHODS)
    )  # unregistered afterwards

    @dataclass(frozen=True)
    class ToyOptions(EncoderOptions):
        target: float = option(1.0, "mean squared embedding to aim for", gt=0)

    @register("toy")
    class Toy(SSLMethod):
        Options = ToyOptions

        def loss(self, x):
            energy = self.encoder(x).pow(2).mean()
            return LossOutput((energy - self.options.target) ** 2, {"energy": energy})

    assert "toy" in available() and [r["name"] for r in describe_options("toy")][-1] == "target"
    with pytest.raises(ConfigError, match=r"^toy: target must be a finite number > 0, got -1$"):
        build_method("toy", 20, target=-1)
    history = train_method(
        build_method("toy", 20, hidden_dims=[8]),
        _tiny_data(),
        TrainConfig(epochs=1, batch_size=16, progress=False),
    )
    assert {"train_energy", "val_energy"} <= set(history[0])
    with pytest.raises(TypeError, match="Options must be a dataclass extending EncoderOptions"):

        class Broken(SSLMethod):
            Options = dict
