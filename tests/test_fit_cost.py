"""The fit's cost: the shortcuts that make a PDCLNet fit cheaper change no number.

- the dual step reads the per-sample losses ``get_loss`` computed (no second pass): the
  multipliers equal, bit for bit, those of the path that recomputes them;
- the dual heads' training (foreach Adam, the full batch without a copy of the rows)
  equals the plain loop (Adam over each tensor, gathered rows) bit for bit;
- ``print_log`` formats nothing at ``verbose=0`` and prints as skorch's does otherwise;
- ``benchmarks/fit_cost.py`` runs end to end with tiny settings.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks import fit_cost
from modal_ally import PDCLNet, PDCLRegressor, _torch_utils
from modal_ally._torch_utils import _fused_adam_runs_on, with_fused_adam
from modal_ally.callbacks import QuietPrintLog
from modal_ally.dual_head import _loss, _rows_output, fit_dual_head
from modal_ally.modules import ConditionalDualHead, DualHead


class _RecomputingNet(PDCLNet):
    """The dual step's own pass: ``get_loss`` keeps nothing for it."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        self.__dict__.pop("_step_values", None)
        return loss


def _l1(y_pred, y_true):
    return (torch.softmax(y_pred, dim=1)
            - nn.functional.one_hot(y_true, y_pred.shape[1])).abs().sum(dim=1)


def test_dual_step_reads_the_losses_of_get_loss(digits):
    X, y = digits["X_train"], digits["y_train"]
    for params in ({}, {"constraint_loss": _l1}, {"slack_cost": 2.0},
                   {"epsilon": np.linspace(0.1, 0.4, len(y)).astype(np.float32)}):
        kept = PDCLNet(max_epochs=4, random_state=0, dual_head_epochs=1, **params).fit(X, y)
        again = _RecomputingNet(max_epochs=4, random_state=0, dual_head_epochs=1,
                                **params).fit(X, y)
        for name in ("lambdas_", "lambdas_mean_", "constraint_losses_", "relaxations_"):
            np.testing.assert_array_equal(getattr(kept, name), getattr(again, name))
        assert kept.history[:, "primal_loss"] == again.history[:, "primal_loss"]
        assert "_step_values" not in kept.__dict__


def _plain_head_fit(head, embeddings, targets, *, epochs, lr, labels=None, probs=None):
    """The dual head's training written plainly: Adam over each tensor, gathered rows."""
    scaled = (targets - targets.mean()) / targets.std()
    own = None if probs is None else probs.gather(1, labels.reshape(-1, 1))[:, 0]
    head.set_input_scaling(embeddings)
    if own is not None:
        head.set_slot_scaling(own)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, foreach=False)
    rows = torch.arange(embeddings.shape[0])
    conditional = "none" if probs is None else "loss"
    head.train(True)
    for _ in range(epochs):
        value = _loss("mse", _rows_output(head, embeddings, conditional, labels, own, rows),
                      scaled[rows])
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
    head.train(False)


def test_dual_head_training_equals_the_plain_loop():
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.rand(300, 16, generator=generator)
    targets = torch.rand(300, generator=generator)
    labels = torch.randint(3, (300,), generator=generator)
    probs = torch.softmax(torch.randn(300, 3, generator=generator), dim=1)
    for build, extra in ((lambda: DualHead(16), {}),
                         (lambda: ConditionalDualHead(16),
                          {"labels": labels, "probs": probs})):
        torch.manual_seed(1)
        fast, plain = build(), build()
        plain.load_state_dict(fast.state_dict())
        fit_dual_head(fast, embeddings, targets, epochs=15, lr=5e-3, batch_size=4096,
                      conditional="loss" if extra else "none", **extra)
        _plain_head_fit(plain, embeddings, targets, epochs=15, lr=5e-3, **extra)
        for key, value in plain.state_dict().items():
            assert torch.equal(fast.state_dict()[key], value), key


def test_print_log_is_quiet_only_when_nothing_is_shown(digits, capsys):
    X, y = digits["X_train"][:60], digits["y_train"][:60]
    net = PDCLNet(max_epochs=2, random_state=0, dual_head_epochs=1)
    assert isinstance(dict(net.get_default_callbacks())["print_log"], QuietPrintLog)
    net.fit(X, y)
    assert capsys.readouterr().out == ""
    net.set_params(verbose=1).fit(X, y)
    printed = capsys.readouterr().out
    assert "epoch" in printed and "lambda_mean" in printed and printed.count("\n") >= 4
    lines = []
    net.set_params(verbose=0, callbacks__print_log__sink=lines.append).fit(X, y)
    assert len(lines) == 4 and "lambda_mean" in lines[0]  # header, rule, two epochs


def test_fit_cost_benchmark_runs(tmp_path):
    result = fit_cost.main(["--datasets", "manyclass", "--sizes", "150", "--epochs", "2",
                            "--repeats", "2", "--out", str(tmp_path)])
    with open(result["paths"]["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(fit_cost.ARMS)
    assert {row["arm"] for row in rows} == set(fit_cost.ARMS)
    summary = result["summaries"][0]
    assert summary["n_rows"] == 150 and set(summary["cpu_s"]) == set(fit_cost.ARMS)
    assert fit_cost.ratio(summary, "skorch") > 0
    steps = {row["step"] for row in result["profile"] if row["arm"] == "PDCLNet"}
    assert {"dual step (DualState.step)", "  pool head fit", "whole fit"} <= steps
    text = result["paths"]["md"].read_text()
    assert "PDCLNet / skorch (RowDataset) (CPU)" in text and "manyclass" in text
    assert "PDCLNet + paper head / skorch (CPU)" in text


def test_fit_cost_report_leaves_the_ratio_of_an_arm_not_run_empty():
    summary = {"dataset": "mnist", "n_rows": 10000,
               "cpu_s": {"PDCLNet": 21.0, "skorch": 19.5},
               "seconds": {"PDCLNet": 21.1, "skorch": 19.6}}
    row = next(line for line in fit_cost.report([summary], [], "settings").splitlines()
               if line.startswith("| mnist"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:5] == ["", "**1.077**", ""]  # no "****" where an arm did not run


def _head_state(net):
    return {key: value.clone() for key, value in net.dual_head_.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_the_paper_head_trains_at_its_first_read_as_an_immediate_training(digits):
    """The default rule never reads the paper's head, so a fit leaves its training until
    a read; read after a default query, under no_grad, through pickle or save_params,
    it equals the head read right after the fit, bit for bit (and the pool head and
    the query are those of a net whose paper head was read first)."""
    import io
    import pickle

    from modAL.models import ActiveLearner

    from modal_ally import ally_query_strategy

    X, y = digits["X_train"], digits["y_train"]
    pool = digits["X_pool"]

    def fitted():
        return PDCLNet(max_epochs=3, random_state=0).fit(X, y)

    eager = fitted()
    expected = _head_state(eager)  # read at once: trained now
    eager_query = ActiveLearner(estimator=eager, query_strategy=ally_query_strategy).query(
        pool, n_instances=10, random_state=0)[0]

    lazy = fitted()
    assert "_dual_head_pending" in lazy.__dict__
    learner = ActiveLearner(estimator=lazy, query_strategy=ally_query_strategy)
    picks = learner.query(pool, n_instances=10, random_state=0)[0]
    np.testing.assert_array_equal(picks, eager_query)
    assert "_dual_head_pending" in lazy.__dict__  # the default rule left it untrained
    with torch.no_grad():
        _assert_same_state(_head_state(lazy), expected)
    assert "_dual_head_pending" not in lazy.__dict__

    pickled = pickle.loads(pickle.dumps(fitted()))
    assert "_dual_head_pending" not in pickled.__dict__
    _assert_same_state(_head_state(pickled), expected)

    files = {"f_params": io.BytesIO(), "f_dual_heads": io.BytesIO()}
    fitted().save_params(**files)
    for buffer in files.values():
        buffer.seek(0)
    loaded = PDCLNet(max_epochs=3, random_state=0, module__input_dim=X.shape[1],
                     module__output_dim=10).initialize()
    loaded.load_params(**files)
    _assert_same_state(_head_state(loaded), expected)
    np.testing.assert_array_equal(loaded.predict_dual(pool), eager.predict_dual(pool))


def test_a_refit_drops_the_last_fits_pending_head(digits):
    X, y = digits["X_train"], digits["y_train"]
    net = PDCLNet(max_epochs=2, random_state=0).fit(X, y)
    first = net.__dict__["dual_head_"]
    net.fit(X[:150], y[:150])
    assert net.__dict__["_dual_head_pending"][0] is net.__dict__["dual_head_"] is not first
    assert net.__dict__["_dual_head_pending"][1].shape[0] == 150
    net.dual_head_ = first  # a head set by hand is not trained over
    assert net.dual_head_ is first and "_dual_head_pending" not in net.__dict__


@pytest.mark.parametrize("build", [lambda: DualHead(16), lambda: ConditionalDualHead(16)])
def test_rows_standardized_once_train_the_head_as_at_every_step(build):
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.rand(500, 16, generator=generator) * 3 + 1
    targets = torch.rand(500, generator=generator)
    labels = torch.randint(3, (500,), generator=generator)
    probs = torch.softmax(torch.randn(500, 3, generator=generator), dim=1)
    kwargs = dict(epochs=4, lr=5e-3, batch_size=128, labels=labels, probs=probs,
                  validation=0.2, conditional="loss" if isinstance(build(), ConditionalDualHead)
                  else "none")
    torch.manual_seed(1)
    once = build()
    # a subclass (whose forward may standardize on its own) is standardized at every step
    every = type("UsersHead", (type(once),), {})(16)
    every.load_state_dict(once.state_dict())
    fit_dual_head(once, embeddings, targets, **kwargs)
    assert not once._inputs_standardized  # the context is closed after training
    fit_dual_head(every, embeddings, targets, **kwargs)
    for key, value in every.state_dict().items():
        assert torch.equal(once.state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(once(embeddings) if kwargs["conditional"] == "none"
                           else once(embeddings, probs[:, 0]),
                           every(embeddings) if kwargs["conditional"] == "none"
                           else every(embeddings, probs[:, 0]))


def test_a_head_left_by_an_error_standardizes_its_inputs_again():
    head = DualHead(4)
    head.set_input_scaling(torch.rand(10, 4) * 5)
    x = torch.rand(3, 4)
    with pytest.raises(RuntimeError, match="stop"):
        with head.standardized_inputs():
            assert torch.equal(head.standardize(x), x)
            raise RuntimeError("stop")
    assert torch.equal(head.standardize(x), (x - head.input_mean) / head.input_scale)


def test_pdcl_nets_use_torchs_fused_adam_where_it_runs(digits):
    X, y = digits["X_train"][:150], digits["y_train"][:150]
    net = PDCLNet(max_epochs=1, random_state=0).fit(X, y)
    assert isinstance(net.optimizer_, torch.optim.Adam)
    assert net.optimizer_.defaults["fused"] is (True if _fused_adam_runs_on("cpu") else None)
    regressor = PDCLRegressor(max_epochs=1, random_state=0).fit(X, y.astype(np.float32))
    assert regressor.optimizer_.defaults["fused"] == net.optimizer_.defaults["fused"]


@pytest.mark.parametrize("params, expected", [
    ({"optimizer__foreach": False}, {"foreach": False, "fused": None}),
    ({"optimizer__fused": False}, {"fused": False}),
    ({"optimizer": torch.optim.SGD}, {"fused": None}),
])
def test_a_users_choice_of_optimizer_or_implementation_is_kept(digits, params, expected):
    X, y = digits["X_train"][:100], digits["y_train"][:100]
    net = PDCLNet(max_epochs=1, random_state=0, **params).fit(X, y)
    for key, value in expected.items():
        assert net.optimizer_.defaults.get(key) == value, key


def test_the_fused_kernel_trains_as_adam_to_rounding(digits):
    X, y = digits["X_train"], digits["y_train"]
    fused = PDCLNet(max_epochs=5, random_state=0).fit(X, y)
    looped = PDCLNet(max_epochs=5, random_state=0, optimizer__foreach=False).fit(X, y)
    np.testing.assert_allclose(fused.predict_proba(X), looped.predict_proba(X), atol=1e-4)
    np.testing.assert_allclose(fused.lambdas_, looped.lambdas_, atol=1e-4)


def test_with_fused_adam_leaves_what_the_kernel_cannot_take(monkeypatch):
    weight = torch.zeros(3, requires_grad=True)
    kwargs = {"lr": 0.1}
    assert with_fused_adam(torch.optim.RMSprop, ([{"params": [weight]}],), kwargs) == kwargs
    assert with_fused_adam(torch.optim.Adam, ([{"params": [torch.zeros(2, dtype=torch.int64)]}],),
                           kwargs) == kwargs
    monkeypatch.setitem(_torch_utils._FUSED_ADAM, "cpu", False)  # a torch before 2.4
    assert with_fused_adam(torch.optim.Adam, ([{"params": [weight]}],), kwargs) == kwargs
    monkeypatch.setitem(_torch_utils._FUSED_ADAM, "cpu", True)
    assert with_fused_adam(torch.optim.AdamW, ([weight],), kwargs) == {"lr": 0.1, "fused": True}


def test_the_looped_adam_arm_is_torchs_default_update(digits):
    net = fit_cost.build_arm("PDCLNet (looped Adam)", None, epochs=1)
    net.fit(digits["X_train"][:100], digits["y_train"][:100])
    assert net.optimizer_.defaults["foreach"] is False and not net.optimizer_.defaults["fused"]
