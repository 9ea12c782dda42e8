"""A stopping criterion from the dual variables of primal-dual constrained learning.

References
----------
.. [ENR22] Elenter, J., NaderiAlizadeh, N. and Ribeiro, A. "A Lagrangian Duality
   Approach to Active Learning." NeurIPS 2022.
"""

from __future__ import annotations

import numpy as np
from sklearn.exceptions import NotFittedError

from ..callbacks import dual_targets
from ._base import StoppingCriterion, check_count, check_number, check_rows, final_step

__all__ = ["DualCriterion"]


class DualCriterion(StoppingCriterion):
    """Stop when the pool's best candidates bind less than the labeled constraints do.

    For a PDCL estimator (:class:`modal_ally.PDCLNet`, :class:`modal_ally.PDCLRegressor`).
    Each round the statistic is

    ``ratio = mean of the n_instances largest predicted multipliers on the pool
    / mean fitted multiplier of the labeled set``

    and the criterion stops once ``ratio <= threshold`` for ``patience`` consecutive
    rounds.

    Why. In the constrained problem ``min E[l] s.t. l'(f(x_i), y_i) <= eps_i`` the
    optimal multiplier ``lambda*_i`` is, up to sign and the 1/n of the empirical mean,
    the sensitivity of the optimal loss to ``eps_i`` ([ENR22]_, Theorem 3.2): how hard
    the solution has to work to satisfy sample ``i``. By complementary slackness a
    constraint with multiplier 0 can be removed, or added, without moving the solution:
    a label for such a sample is worth nothing to the constrained learner. ALLY's dual
    head predicts the multiplier an unlabeled sample would get; so when even the
    ``n_instances`` samples the next query would take are predicted to bind less than
    an average labeled sample does (``ratio <= 1``, the default threshold: the next
    batch is no harder than what the model already satisfies), further labels are
    expected to change the solution less than the ones already paid for. The ratio is
    free of the multipliers' scale (dual step size, epochs, target units), so one
    threshold serves classification and regression. The share of active constraints
    of the labeled set (``lambda > 0``) is reported beside it in ``details``.

    With a very small labeled set (the first rounds) the ratio is noisy and can stop
    too early: start checking after a few rounds when the initial set is small.

    When every labeled multiplier is 0 (epsilon above every training loss) the dual
    head predicts 0 for every row and the ratio is defined as 0: no constraint binds,
    and the criterion stops; lower epsilon to get a signal.

    Parameters
    ----------
    n_instances : int >= 1 or None
        How many of the pool's largest predicted multipliers to average: the query
        batch size (the batch the next query would take). None averages the whole pool,
        which falls below the labeled mean as soon as ALLY has picked the hard samples,
        saturated or not: it stops early (see ``benchmarks/stopping.py``).
    threshold : float > 0, default 1.0
    patience : int >= 1, default 2
    """

    name = "dual"
    _param_names = ("n_instances", "threshold", "patience")

    def __init__(self, n_instances, *, threshold=1.0, patience=2):
        self.n_instances = check_count(n_instances, "n_instances", allow_none=True)
        check_number(threshold, "threshold", low=0, low_open=True)
        check_count(patience, "patience")
        super().__init__(threshold=threshold, patience=patience)

    def _statistic(self, learner, X_pool, n_labeled):
        preprocess, net = final_step(learner)
        if not callable(getattr(net, "predict_dual", None)):
            raise TypeError(f"DualCriterion needs a PDCL estimator with predicted dual "
                            f"variables, got {type(net).__name__}; use "
                            "PDCLNet(module=YourModule, ...) or PDCLRegressor(...)")
        lambdas = getattr(net, "lambdas_", None)
        if lambdas is None:
            raise NotFittedError("DualCriterion: the PDCL estimator is not fitted yet "
                                 "(no lambdas_); fit it (or teach the learner) first")
        n_pool = check_rows(X_pool, "X_pool")
        scores = np.asarray(net.predict_dual(preprocess(X_pool)), dtype=np.float64)
        # the multipliers the heads learned (the same units as the predictions)
        lambdas = np.asarray(dual_targets(net), dtype=np.float64)
        top = n_pool if self.n_instances is None else min(self.n_instances, n_pool)
        top_mean = float(np.mean(np.partition(scores, n_pool - top)[n_pool - top:]))
        labeled_mean = float(lambdas.mean())
        ratio = top_mean / labeled_mean if labeled_mean > 0 else 0.0
        details = {"pool_top_mean": top_mean, "pool_mean": float(scores.mean()),
                   "labeled_mean": labeled_mean,
                   "active_fraction": float(np.mean(np.asarray(net.lambdas_) > 0))}
        return ratio, n_pool, "pool", details

    def _met(self, statistic):
        return statistic <= self.threshold
