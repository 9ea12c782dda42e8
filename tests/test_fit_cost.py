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
import torch
from torch import nn

from benchmarks import fit_cost
from modal_ally import PDCLNet
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
    assert "ratio to skorch (RowDataset) (CPU)" in text and "manyclass" in text
