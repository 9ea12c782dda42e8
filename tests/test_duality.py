"""The duality theorem behind ALLY, checked numerically (DESIGN 1.1).

PDCL's multipliers on a convex problem (linear softmax model, cross-entropy, one
constraint per row) must match the exact KKT multipliers of a constrained solver, and
``lambda*_i / n`` must be the sensitivity of the optimal value to ``epsilon_i``.
"""

import numpy as np
import pytest
import torch

from modal_ally import PDCLNet
from modal_ally.diagnostics._constrained import _ce, _ce_hessian
from modal_ally.diagnostics.duality import (
    LinearModule,
    duality_check,
    format_duality_check,
    make_duality_data,
    minimax_loss,
    solve_constrained,
)


@pytest.fixture(scope="module")
def report():
    return duality_check(random_state=0)


def _assert_duality(report):
    lam_exact, lam_pdcl = report["lambda_exact"], report["lambda_pdcl"]
    n = report["n_samples"]
    assert lam_exact.shape == lam_pdcl.shape == (n,)
    # a meaningful problem: some rows active, most not
    assert 3 <= len(report["active_exact"]) < n // 2
    assert report["kkt_residual"] < 1e-8
    # PDCL converged: the multipliers stopped moving and the primal matches
    assert report["lambda_drift"] < 1e-2
    assert report["param_rel_error"] < 1e-2
    assert report["value_pdcl"] == pytest.approx(report["value_exact"], rel=1e-3)
    # the multipliers agree
    assert report["correlation"] >= 0.95
    assert report["same_active_set"]
    assert report["active_agreement"] == 1.0
    assert report["active_exact"] == report["active_pdcl"]
    # the theorem: (P*(eps - h e_i) - P*(eps)) / h tracks lambda*_i / n
    table = report["finite_differences"]
    active = [e for e in table if e["active"]]
    assert len(active) >= 3
    for e in active:
        assert e["rel_error_exact"] < 0.1, e
        assert e["rel_error_pdcl"] < 0.2, e
        # P* is convex in epsilon: the one-sided slope is at least the multiplier
        assert e["fd_slope"] >= e["exact_over_n"] * (1 - 1e-3), e
    control = [e for e in table if not e["active"]]
    assert len(control) == 1
    assert abs(control[0]["fd_slope"]) < 1e-3 * max(e["exact_over_n"] for e in active)


def test_duality_check_matches_exact_multipliers(report):
    _assert_duality(report)


def test_report_prints(report):
    text = format_duality_check(report)
    assert "Pearson correlation" in text
    assert "finite differences" in text
    assert len(text.splitlines()) == 8 + len(report["finite_differences"])


@pytest.mark.slow
@pytest.mark.parametrize("random_state", [1, 2, 3, 4, 5])
def test_duality_check_other_seeds(random_state):
    _assert_duality(duality_check(random_state=random_state))


def test_user_epsilon():
    report = duality_check(random_state=0, epsilon=1.3, n_fd_rows=1)
    assert np.all(report["epsilon"] == np.float32(1.3))
    assert report["correlation"] >= 0.95
    assert report["same_active_set"]
    assert len(report["finite_differences"]) == 2


def test_infeasible_epsilon_is_refused():
    with pytest.raises(ValueError, match="not strictly feasible"):
        duality_check(random_state=0, epsilon=0.3)


@pytest.mark.parametrize("kwargs, match", [
    ({"h": 0.0}, "h must be"),
    ({"n_samples": 0}, "n_samples must be"),
    ({"n_classes": 1}, "n_classes must be"),
    ({"epsilon_fraction": 1.5}, "epsilon_fraction"),
    ({"epsilon": np.ones(3)}, "one value per row"),
    ({"epsilon": -1.0}, ">= 0"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        duality_check(**kwargs)


# ---------------------------------------------------------------------------- exact solver
def test_analytic_derivatives_match_autograd():
    X, y = make_duality_data(12, 3, 3, random_state=1)
    X = X.astype(np.float64)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=12)
    weights = rng.random(12)
    losses, jac, probs = _ce(theta, X, y, 3)

    def weighted_loss(t):
        logits = torch.as_tensor(X) @ t[:9].reshape(3, 3).T + t[9:]
        per_row = torch.nn.functional.cross_entropy(
            logits, torch.as_tensor(y), reduction="none")
        return per_row, per_row @ torch.as_tensor(weights)

    t = torch.tensor(theta, requires_grad=True)
    per_row, total = weighted_loss(t)
    np.testing.assert_allclose(losses, per_row.detach().numpy(), rtol=1e-10)
    (grad,) = torch.autograd.grad(total, t)
    np.testing.assert_allclose(jac.T @ weights, grad.numpy(), rtol=1e-9, atol=1e-12)
    hess = torch.autograd.functional.hessian(lambda t: weighted_loss(t)[1], t.detach())
    np.testing.assert_allclose(_ce_hessian(probs, X, weights), hess.numpy(), rtol=1e-8,
                               atol=1e-12)


def test_solve_constrained_kkt():
    X, y = make_duality_data(random_state=0)
    eps = minimax_loss(X, y) + 0.2
    sol = solve_constrained(X, y, eps)
    assert sol.result.status in (1, 2)
    assert sol.max_violation < 1e-8
    assert sol.kkt_residual < 1e-8
    assert (sol.multipliers >= 0).all()
    np.testing.assert_allclose(sol.lambdas, X.shape[0] * sol.multipliers)
    # complementary slackness
    assert np.abs(sol.multipliers * (sol.losses - eps)).max() < 1e-9
    assert sol.coef.shape == (3, 4) and sol.intercept.shape == (3,)


def test_solve_constrained_loose_epsilon_is_unconstrained():
    X, y = make_duality_data(random_state=0)
    free = solve_constrained(X, y, None)
    loose = solve_constrained(X, y, free.losses.max() + 1.0)
    np.testing.assert_allclose(loose.theta, free.theta, atol=1e-6)
    assert loose.lambdas.max() < 1e-5
    assert np.all(free.lambdas == 0)


def test_minimax_loss_is_feasibility_threshold():
    X, y = make_duality_data(random_state=0)
    e_min = minimax_loss(X, y)
    assert 0 < e_min < np.log(3) + 1e-6
    assert minimax_loss(X, y, epsilon=e_min + 0.1) == pytest.approx(-0.1, abs=1e-4)
    assert minimax_loss(X, y, epsilon=e_min - 0.1) == pytest.approx(0.1, abs=1e-4)


def test_linear_module_contract():
    module = LinearModule(4, 3)
    x = torch.randn(5, 4)
    torch.testing.assert_close(module(x), module.head(module.backbone(x)))
    assert module.embedding_dim == 4
    with pytest.raises(ValueError, match="input_dim and output_dim"):
        LinearModule(None, 3)
    X, y = make_duality_data(30, 4, 3, random_state=0)
    net = PDCLNet(LinearModule, max_epochs=2, random_state=0).fit(X, y)
    assert net.module_.head.weight.shape == (3, 4)
    assert net.embed(X).shape == (30, 4)
