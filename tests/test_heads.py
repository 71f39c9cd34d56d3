"""Stacked heads: M models trained at once behave exactly like M models trained one by one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from exprssl.encoders import MLPEncoder
from exprssl.evaluation.heads import HeadRecipe, StackedMLP, predict_proba, train_stacked


def _reference(encoder, net, X, y, rows, epochs, recipe):
    """Plain nn modules from the untrained stack's initial head, full-batch AdamW on ``rows``:
    what model m of the stack must equal."""
    enc = copy.deepcopy(encoder)
    head = nn.Linear(enc.out_dim, net.head_w.shape[-1])
    with torch.no_grad():
        head.weight.copy_(net.head_w[0].T)
        head.bias.copy_(net.head_b[0])
    model = nn.Sequential(enc, head)
    opt = torch.optim.AdamW(
        [
            {"params": head.parameters(), "lr": recipe.lr},
            {"params": enc.parameters(), "lr": recipe.encoder_lr},
        ],
        weight_decay=recipe.weight_decay,
        fused=True,
    )
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(X[rows]), y[rows]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(X), 1).numpy()


def test_each_stacked_model_equals_its_own_reference_training():
    torch.manual_seed(0)
    X, y = torch.randn(30, 40), torch.randint(0, 3, (30,))
    enc = MLPEncoder(40, [16, 8], dropout=0.0)
    recipe = HeadRecipe(epochs=6, lr=1e-2, encoder_lr=1e-3, batch_size=64, patience=100)
    masks = torch.ones(3, 30, dtype=torch.bool)
    masks[1, :10] = False  # model 1 never sees rows 0-9, model 2 never rows 20-29
    masks[2, 20:] = False
    net = StackedMLP(enc, 40, 3, 3, seed=1)
    untrained = copy.deepcopy(net)
    train_stacked(net, X, y, masks, None, recipe)
    stacked = predict_proba(net, X)
    refs = [
        _reference(enc, untrained, X, y, masks[m].nonzero().view(-1), 6, recipe) for m in range(3)
    ]
    for m in range(3):
        # float noise only (Adam's first steps amplify it); a model that saw another's rows is
        # 10x off
        np.testing.assert_allclose(stacked[m], refs[m], atol=2e-3)
        assert all(np.abs(stacked[m] - refs[o]).max() > 1e-2 for o in range(3) if o != m)


def test_early_stopping_keeps_each_models_best_weights():
    """A model whose validation loss only worsens keeps its first-epoch weights; a model without
    validation rows trains every epoch; neither affects the other."""
    torch.manual_seed(0)
    X = torch.randn(40, 10)
    y = (X[:, 0] > 0).long()
    train = torch.zeros(2, 40, dtype=torch.bool)
    train[:, :30] = True
    val = torch.zeros(2, 40, dtype=torch.bool)
    val[0, 30:] = True  # model 0 early-stops, model 1 has no validation rows
    y_val_flipped = y.clone()
    y_val_flipped[30:] = 1 - y[30:]  # validation labels opposite: learning makes its loss worse
    recipe = HeadRecipe(epochs=30, lr=5e-2, encoder_lr=5e-2, batch_size=64, patience=3)
    net = StackedMLP(MLPEncoder(10, [8], dropout=0.0), 10, 2, 2, seed=0)
    best = train_stacked(net, X, y_val_flipped, train, val, recipe)
    assert np.isfinite(best[0]) and np.isinf(best[1])
    proba = predict_proba(net, X)
    acc = (proba.argmax(2) == y.numpy()).mean(1)
    assert acc[1] > 0.9  # trained all epochs
    assert acc[0] < acc[1]  # stopped early at its best (worst-fitting) validation epoch


def test_frozen_encoder_and_linear_model():
    torch.manual_seed(0)
    enc = MLPEncoder(12, [6], dropout=0.3)
    before = [p.detach().clone() for p in enc.parameters()]
    net = StackedMLP(enc, 12, 2, 2, freeze_encoder=True)
    X, y = torch.randn(20, 12), torch.randint(0, 2, (20,))
    train_stacked(net, X, y, torch.ones(2, 20, dtype=torch.bool), None, HeadRecipe(epochs=3))
    block = net.blocks[0]
    np.testing.assert_array_equal(block.weight[:, 0].detach().numpy(), before[0].T.numpy())
    assert all(
        torch.equal(a, b) for a, b in zip(before, enc.parameters(), strict=True)
    )  # source untouched
    linear = StackedMLP(None, 12, 3, 1)
    train_stacked(linear, X, y, torch.ones(1, 20, dtype=torch.bool), None, HeadRecipe(epochs=2))
    assert predict_proba(linear, X).shape == (1, 20, 3)


@pytest.mark.parametrize("n_models", [1, 4])
def test_probabilities_sum_to_one(n_models):
    net = StackedMLP(MLPEncoder(5, [4]), 5, 3, n_models)
    p = predict_proba(net, torch.randn(7, 5))
    assert p.shape == (n_models, 7, 3)
    np.testing.assert_allclose(p.sum(2), 1.0, rtol=1e-5)


def test_a_model_without_rows_in_a_batch_stays_finite_and_keeps_its_statistics():
    """Stacked models share batches: a model with fewer than two of its rows in a batch skips it.
    Its BatchNorm statistics were 0/0 there, which turned its running statistics (and so its
    predictions) into NaN for good: the 100%-of-labels collapse of 0.3 (66 rows in batches of
    32 left a last batch of two rows, often none of a fold model's)."""
    torch.manual_seed(0)
    X = torch.randn(40, 10)
    y = (X[:, 0] > 0).long()
    train = torch.zeros(2, 40, dtype=torch.bool)
    train[0] = True
    train[1, :12] = True  # in batches of 4 over 40 rows, most batches hold 0 or 1 of these
    val = torch.zeros(2, 40, dtype=torch.bool)
    val[1, 12:20] = True
    recipe = HeadRecipe(epochs=40, lr=1e-2, encoder_lr=1e-2, batch_size=4, patience=100)
    net = StackedMLP(MLPEncoder(10, [8], dropout=0.0), 10, 2, 2, seed=0)
    best = train_stacked(net, X, y, train, val, recipe)
    assert np.isfinite(best[1])
    for t, _ in net.state_tensors():
        assert torch.isfinite(t).all()
    proba = predict_proba(net, X)
    assert np.isfinite(proba).all()
    assert (proba[1, :12].argmax(1) == y[:12].numpy()).mean() > 0.9  # it learned its 12 rows


def test_batches_are_equal_so_no_batch_is_one_or_two_rows():
    """66 rows in batches of at most 32 train as three batches of 22, not 32 + 32 + 2."""
    sizes = []

    class Spy(StackedMLP):
        def forward(self, x, mask=None, train=False, rng=None):
            if train:
                sizes.append(len(x))
            return super().forward(x, mask, train, rng)

    net = Spy(MLPEncoder(5, [4], dropout=0.0), 5, 2, 1)
    X, y = torch.randn(66, 5), torch.randint(0, 2, (66,))
    recipe = HeadRecipe(epochs=1, batch_size=32)
    train_stacked(net, X, y, torch.ones(1, 66, dtype=torch.bool), None, recipe)
    assert sizes == [22, 22, 22]


def test_a_stopped_model_leaves_the_stack_and_the_others_train_as_before():
    """Model 0 early-stops (its validation labels are flipped) and leaves: the steps after it
    hold one model, and model 1 (no validation rows, so it runs every epoch) ends exactly where
    it ends when model 0 never stops (no validation rows either), dropout included. In float64:
    in float32 a one-model GEMM rounds differently from a two-model one, and Adam amplifies it."""
    torch.manual_seed(0)
    X = torch.randn(40, 10, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    y_flipped = y.clone()
    y_flipped[30:] = 1 - y[30:]
    train = torch.zeros(2, 40, dtype=torch.bool)
    train[:, :30] = True
    val = torch.zeros(2, 40, dtype=torch.bool)
    val[0, 30:] = True
    recipe = HeadRecipe(epochs=25, lr=5e-2, encoder_lr=5e-2, batch_size=16, patience=2)
    held = []

    class Spy(StackedMLP):
        def forward(self, x, mask=None, train=False, rng=None):
            if train:
                held.append(self.n_models)
            return super().forward(x, mask, train, rng)

    encoder = MLPEncoder(10, [8, 8], dropout=0.3)

    def trained(val_mask):
        net = Spy(encoder, 10, 2, 2, seed=0).double()
        best = train_stacked(net, X, y_flipped, train, val_mask, recipe, seed=4)
        return net, best

    net, best = trained(val)
    stopped_after = held.index(1)  # the first step without model 0
    assert 0 < stopped_after < len(held) and set(held[stopped_after:]) == {1}
    assert np.isfinite(best[0]) and np.isinf(best[1])
    assert net.n_models == 2 and net.head_w.shape[0] == 2  # every model held again
    held.clear()
    reference, _ = trained(None)
    assert set(held) == {2}
    np.testing.assert_allclose(
        predict_proba(net, X)[1], predict_proba(reference, X)[1], rtol=0, atol=1e-9
    )


def test_training_ends_when_every_model_has_stopped():
    """Both models' validation losses only worsen: both stop after ``patience`` epochs without
    improving, and training ends there, far before ``epochs``."""
    torch.manual_seed(0)
    X = torch.randn(40, 10)
    y = (X[:, 0] > 0).long()
    y[30:] = 1 - y[30:]
    train = torch.zeros(2, 40, dtype=torch.bool)
    train[:, :30] = True
    val = torch.zeros(2, 40, dtype=torch.bool)
    val[:, 30:] = True
    epochs = []

    class Spy(StackedMLP):
        def forward(self, x, mask=None, train=False, rng=None):
            if not train:
                epochs.append(self.n_models)  # one validation pass per epoch
            return super().forward(x, mask, train, rng)

    net = Spy(MLPEncoder(10, [8], dropout=0.0), 10, 2, 2, seed=0)
    recipe = HeadRecipe(epochs=200, lr=5e-2, encoder_lr=5e-2, batch_size=64, patience=3)
    train_stacked(net, X, y, train, val, recipe)
    assert len(epochs) < 30


def test_a_model_trained_alone_later_trains_as_it_did_beside_the_others():
    """``only``: the fold models first, then the final model alone, end where training them all
    at once ends (float64), so fit_torch need not train the final models it does not choose."""
    torch.manual_seed(0)
    X = torch.randn(48, 10, dtype=torch.float64)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    train = torch.ones(3, 48, dtype=torch.bool)
    train[0, :16], train[1, 16:32], train[2, 40:] = False, False, False
    val = ~train
    encoder = MLPEncoder(10, [8, 8], dropout=0.3)
    recipe = HeadRecipe(epochs=30, lr=2e-2, encoder_lr=2e-2, batch_size=16, patience=3)

    def net():
        return StackedMLP(encoder, 10, 2, 3, seed=1).double()

    together = net()
    best_together = train_stacked(together, X, y, train, val, recipe, seed=2)
    apart, final = net(), torch.tensor([False, False, True])
    best_folds = train_stacked(apart, X, y, train, val, recipe, seed=2, only=~final)
    assert np.isinf(best_folds[2])  # the final model did not train
    best_final = train_stacked(apart, X, y, train, val, recipe, seed=2, only=final)
    np.testing.assert_allclose(best_folds[:2], best_together[:2], rtol=1e-9)
    np.testing.assert_allclose(best_final[2], best_together[2], rtol=1e-9)
    np.testing.assert_allclose(predict_proba(apart, X), predict_proba(together, X), atol=1e-9)


@pytest.mark.parametrize(("rows", "patience"), [(64, 10), (200, 4), (1000, 2)])
def test_patience_counts_steps_once_epochs_are_long(monkeypatch, rows, patience):
    """Validation losses that only worsen after the first epoch: a model stops after
    ``patience_epochs`` more epochs: the recipe's 10 up to 32 batches an epoch (every bundled
    cohort), then as many epochs as hold 10 x 32 steps (100 batches: 4), at least 2."""
    from exprssl.evaluation import heads

    assert heads.patience_epochs(10, 32) == 10 and heads.patience_epochs(10, 234) == 2
    assert heads.patience_epochs(0, 500) == 0 and heads.patience_epochs(1, 500) == 1
    assert heads.patience_epochs(rows // 2, rows // 2) >= 2
    calls = []

    def worsening(net, X, y, val_mask):
        calls.append(1)
        return torch.full((val_mask.shape[0],), float(len(calls)))

    monkeypatch.setattr(heads, "_validation_losses", worsening)
    torch.manual_seed(0)
    X, y = torch.randn(rows + 8, 4), torch.randint(0, 2, (rows + 8,))
    train = torch.zeros(1, rows + 8, dtype=torch.bool)
    train[:, :rows] = True
    net = StackedMLP(MLPEncoder(4, [4], dropout=0.0), 4, 2, 1, seed=0)
    recipe = HeadRecipe(epochs=50, batch_size=2, patience=10)
    train_stacked(net, X, y, train, ~train, recipe)
    assert heads.patience_epochs(10, rows // 2) == patience
    assert len(calls) == 1 + patience
