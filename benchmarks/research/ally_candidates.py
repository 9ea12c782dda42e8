"""Research candidates for ALLY's selection rule (issue 7), screened by ``ally_screen.py``.

Every candidate keeps ALLY's informativeness signal, the dual head's predicted multiplier
``lambda_hat`` of each pool sample (Elenter et al., NeurIPS 2022), and changes how a batch
is drawn from it. Each accepts ``weight="none"`` (every ``lambda_hat`` replaced by 1): the
same selection without the dual variables, the ablation that shows what they add.

``ally_d2``
    Weighted k-means++ seeding on the backbone embeddings: the first pick is drawn with
    probability proportional to ``w_i``, every next one proportional to
    ``w_i * D_i^2``, ``D_i`` the distance to the nearest pick (and, with
    ``labeled=True``, to the nearest labeled sample). ``w = lambda_hat ** power``. The batch
    is a seeding of a k-means in which every pool point weighs its predicted multiplier.
``ally_gradient``
    BADGE's k-means++ in gradient-embedding space with every embedding scaled by
    ``lambda_hat ** power``: the gradient norm (uncertainty) and the multiplier
    (constraint violation) multiply. Classification only.
``ally_uncertain``
    The paper's cluster-then-argmax rule with the score ``lambda_hat * (1 - max p)``.
``ally_reweighted``
    The shipped default rule with other draw weights (unshrunk, squared), or on the
    gradient embeddings' directions only, where the duals are the sole
    informativeness signal (issue 16).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state

from benchmarks.harness.ablation import ally_exact, default_query
from modal_ally._compat import query_result
from modal_ally._seeding import gradient_factors, gradient_seeding
from modal_ally._torch_utils import BLOCK_ROWS, rounding_tolerance
from modal_ally._validation import uniform
from modal_ally.clustering import kmeans
from modal_ally.strategies import ally_scores as _ally_scores
from modal_ally.strategies import kmeans_pp_gradient_selection, priority_order
from modal_ally.strategies._stream import pool_features
from modal_ally.strategies.ally import N_COMPONENTS, shrunk_duals
from modal_ally.strategies.badge import _class_probabilities


def ally_scores(net, X_pool):
    """Pool embeddings (a tensor) and predicted lambdas of the pool head (what the
    default rule reads; the API these candidates used)."""
    embeddings, scores = _ally_scores(net, X_pool, head="pool")
    return torch.as_tensor(embeddings), scores

__all__ = ["ally_d2", "ally_gradient", "ally_uncertain", "weighted_d2_seeding",
           "ally_exact", "ally_dask", "ally_reweighted"]


def _sample_proportional(weights, rng):
    """An index drawn with probability ``weights / weights.sum()`` (weights >= 0), or
    None when every weight is 0 (one uniform draw, a search in the float64 cumulative
    sum; the sampler of the package's selections before they drew from stale bounds)."""
    cumulative = torch.cumsum(weights, dim=0, dtype=torch.float64)
    total = float(cumulative[-1])
    if not total > 0:
        return None
    target = torch.tensor([uniform(rng) * total], dtype=torch.float64,
                          device=weights.device)
    index = int(torch.searchsorted(cumulative, target, right=True)[0])
    if index >= weights.shape[0] or not bool(weights[index] > 0):  # rounding at the top
        index = int((weights > 0).nonzero(as_tuple=True)[0][-1])
    return index


def _gradient_sq_distances_to(a, e, a_sq, e_sq, g_sq, center: int):
    """``||g_i - g_center||^2`` for every row (factored form; entries near rounding
    noise recomputed from the differences, so duplicates are at 0): the pick-by-pick
    update of the package's selections before they refreshed in blocks."""
    a_c, e_c = a[center], e[center]
    sums = g_sq + g_sq[center]
    d2 = sums - 2.0 * (a @ a_c) * (e @ e_c)
    tol = rounding_tolerance(a.shape[1] + e.shape[1], a.dtype)
    unsure = (d2 <= tol * sums).nonzero(as_tuple=True)[0]
    for start in range(0, unsure.shape[0], BLOCK_ROWS):
        rows = unsure[start:start + BLOCK_ROWS]
        da, e_rows = a[rows] - a_c, e[rows]
        de = e_rows - e_c
        d2[rows] = ((da * da).sum(dim=1) * e_sq[rows] + a_sq[center] * (de * de).sum(dim=1)
                    + 2.0 * (da @ a_c) * (e_rows * de).sum(dim=1))
    return d2.clamp_min_(0.0)


def _unit_rows(x):
    """Rows scaled to norm 1 (a zero row stays 0)."""
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x / torch.where(norms > 0, norms, torch.ones_like(norms))


def ally_reweighted(learner, X_pool, n_instances=1, *, random_state=None, power=1.0,
                    shrink=False, weight="lambda", directions=False):
    """The shipped default rule (streamed, 32-d projection) with other draw weights:
    ``lambda_hat ** power`` of the pool head, shrunk toward the pool mean with
    ``shrink`` (``shrink=True, power=1``: the default itself). A point weighed 0 is drawn
    only in the fill (issue 16's screening of the duals' strength).

    ``directions=True``: the gradient embeddings' *directions* only,
    ``(a / |a|) (outer) (z / |z|)``: every row has norm 1, so BADGE's uncertainty (the
    gradient norm) leaves the geometry and the duals are the rule's only
    informativeness signal (the first pick is the largest weight; every next one
    ``~ w D^2`` with ``D`` a distance between directions). ``directions="output"``:
    only the output factor ``a`` scaled to norm 1, ``(a / |a|) (outer) z``: the duals
    replace BADGE's uncertainty ``|a|`` and the embedding's norm stays (a regressor's
    ``a`` is constant: its geometry is the default's). ``weight="none"``: every
    weight 1, the ablation."""
    query = default_query(learner, X_pool, n_instances, random_state, "ally_reweighted")
    features = pool_features(query, n_components=N_COMPONENTS, factors=True, duals=True)
    scores = features.scores.numpy().astype(np.float64)
    w = _weights(query.net, scores, weight, power)
    if shrink:
        w = shrunk_duals(w)
    factors, embeddings = features.factors, features.embeddings
    if directions:
        factors = _unit_rows(factors)
        if directions != "output":
            embeddings = _unit_rows(embeddings)
    selected, _ = gradient_seeding(factors, embeddings, query.n_instances,
                                   query.random_state, weights=w.to(query.net.device))
    return query_result(selected, scores[selected])


def _weights(net, scores, weight, power):
    if weight == "none" or not getattr(net, "dual_head_fitted_", False):
        return torch.ones(scores.shape[0], dtype=torch.float64)
    if weight != "lambda":
        raise ValueError(f"weight must be 'lambda' or 'none', got {weight!r}")
    w = torch.as_tensor(scores, dtype=torch.float64).clamp_min(0) ** float(power)
    if not bool((w > 0).any()):
        return torch.ones_like(w)
    return w


def weighted_d2_seeding(embeddings, weights, n_instances, *, rng, reference=None,
                        greedy=False):
    """Draw ``n_instances`` rows by weighted k-means++ (probability ~ w * D^2).

    Parameters
    ----------
    embeddings : torch.Tensor (n, d)
    weights : torch.Tensor (n,), >= 0
    n_instances : int
    rng : numpy RandomState
    reference : torch.Tensor (m, d) or None
        Points that count as already chosen (the labeled set); with None the first pick
        is drawn proportional to ``weights``.
    greedy : bool, default False
        Take the largest ``w * D^2`` at every step instead of drawing (a weighted k-center
        greedy: Core-Set's rule with every distance weighed by ``w``).
    """
    E = embeddings.double()
    w = weights.double().clone()
    n = E.shape[0]
    sq = (E * E).sum(dim=1)

    def d2_to(centers):
        d2 = sq[:, None] + (centers * centers).sum(dim=1)[None, :] - 2.0 * E @ centers.T
        return d2.clamp_min_(0).min(dim=1).values

    if reference is not None and reference.shape[0]:
        min_d2 = torch.full((n,), float("inf"), dtype=torch.float64)
        R = reference.double()
        for start in range(0, R.shape[0], 1024):
            min_d2 = torch.minimum(min_d2, d2_to(R[start:start + 1024]))
    else:
        min_d2 = torch.ones(n, dtype=torch.float64)
    chosen = []
    taken = torch.zeros(n, dtype=torch.bool)
    while len(chosen) < n_instances:
        probs = w * min_d2
        probs[taken] = 0
        if greedy:
            index = int(torch.argmax(probs)) if bool((probs > 0).any()) else None
        else:
            index = _sample_proportional(probs, rng)
        if index is None:  # the rest duplicates the picks: fill by weight
            rest = (~taken).nonzero(as_tuple=True)[0]
            order = torch.sort(w[rest], descending=True, stable=True).indices
            chosen += rest[order[:n_instances - len(chosen)]].tolist()
            break
        chosen.append(index)
        taken[index] = True
        min_d2 = torch.minimum(min_d2, d2_to(E[index:index + 1]))
    return np.asarray(chosen, dtype=np.int64)


def ally_d2(learner, X_pool, n_instances=1, *, random_state=None, weight="lambda",
            power=1.0, labeled=False, greedy=False, shrink=False):
    """Weighted k-means++ on the embeddings, weights ``lambda_hat ** power``."""
    net = getattr(learner, "estimator", learner)
    embeddings, scores = ally_scores(net, X_pool)
    n_instances = min(int(n_instances), embeddings.shape[0])
    rng = check_random_state(random_state)
    reference = torch.as_tensor(net.train_embeddings_) if labeled else None
    w = _weights(net, scores, weight, power)
    if shrink:
        w = shrunk_duals(w)
    selected = weighted_d2_seeding(embeddings.cpu(), w, n_instances, rng=rng,
                                   reference=reference, greedy=greedy)
    return query_result(selected, scores[selected])


def ally_gradient(learner, X_pool, n_instances=1, *, random_state=None, weight="lambda",
                  power=1.0):
    """BADGE's gradient-embedding k-means++ with embeddings scaled by ``lambda_hat``."""
    net = getattr(learner, "estimator", learner)
    embeddings, scores = ally_scores(net, X_pool)
    if getattr(net, "_task", "classification") == "regression":
        # no gradient embedding without classes: a constant factor, k-means++ on the
        # (lambda-scaled) backbone embeddings
        probs = torch.full((embeddings.shape[0], 2), 0.5, dtype=embeddings.dtype)
    else:
        probs = _class_probabilities(net, embeddings)
    w = _weights(net, scores, weight, power).to(embeddings.dtype)
    selected, _ = kmeans_pp_gradient_selection(
        probs, embeddings * w[:, None], min(int(n_instances), embeddings.shape[0]),
        random_state=check_random_state(random_state))
    return query_result(selected, scores[selected])


def ally_uncertain(learner, X_pool, n_instances=1, *, random_state=None, weight="lambda"):
    """The paper's clusters (k = b), argmax of ``lambda_hat * (1 - max p)`` per cluster."""
    net = getattr(learner, "estimator", learner)
    embeddings, scores = ally_scores(net, X_pool)
    n_instances = min(int(n_instances), embeddings.shape[0])
    probs = _class_probabilities(net, embeddings).cpu().double()
    uncertainty = (1.0 - probs.max(dim=1).values).numpy()
    w = _weights(net, scores, weight, 1.0).numpy()
    labels, _ = kmeans(embeddings, n_instances, random_state=random_state, n_components=32)
    order = priority_order(w * uncertainty, labels, n_instances)
    selected = order[:n_instances]
    return query_result(selected, scores[selected])


def weighted_gradient_seeding(probs, embeddings, weights, n_instances, *, rng):
    """k-means++ in gradient-embedding space, drawn with probability ~ w * D^2.

    The geometry is BADGE's (``g_i = (p_i - onehot(yhat_i)) (outer) e_i``); the
    multipliers weigh the draw instead of scaling the space. The first pick maximizes
    ``w * |g|^2``.
    """
    a, e = gradient_factors(probs.double()), embeddings.double()
    a_sq, e_sq = (a * a).sum(dim=1), (e * e).sum(dim=1)
    g_sq = a_sq * e_sq
    w = weights.double()
    n = a.shape[0]
    taken = torch.zeros(n, dtype=torch.bool)
    first = int(torch.argmax(w * g_sq))
    chosen = [first]
    taken[first] = True
    min_d2 = _gradient_sq_distances_to(a, e, a_sq, e_sq, g_sq, first)
    while len(chosen) < n_instances:
        p = w * min_d2
        p[taken] = 0
        index = _sample_proportional(p, rng)
        if index is None:
            rest = (~taken).nonzero(as_tuple=True)[0]
            order = torch.sort((w * g_sq)[rest], descending=True, stable=True).indices
            chosen += rest[order[:n_instances - len(chosen)]].tolist()
            break
        chosen.append(index)
        taken[index] = True
        torch.minimum(min_d2, _gradient_sq_distances_to(a, e, a_sq, e_sq, g_sq, index),
                      out=min_d2)
    return np.asarray(chosen, dtype=np.int64)


def _gradient_inputs(learner, X_pool):
    """The net, pool embeddings (CPU), predicted lambdas and class probabilities (a
    constant factor for a regressor: BADGE's regression embedding is ``e`` itself)."""
    net = getattr(learner, "estimator", learner)
    embeddings, scores = ally_scores(net, X_pool)
    embeddings = embeddings.cpu()
    if getattr(net, "_task", "classification") == "regression":
        probs = torch.full((embeddings.shape[0], 2), 0.5, dtype=torch.float64)
    else:
        probs = _class_probabilities(net, embeddings).cpu()
    return net, embeddings, scores, probs


def ally_gradient_weighted(learner, X_pool, n_instances=1, *, random_state=None,
                           weight="lambda", power=1.0, shrink=False):
    """BADGE's geometry, draws weighted by ``lambda_hat ** power``; with ``shrink``, by
    ``lambda_hat + mean(lambda_hat)`` (every pool point stays drawable)."""
    net, embeddings, scores, probs = _gradient_inputs(learner, X_pool)
    w = _weights(net, scores, weight, power)
    if shrink:
        w = shrunk_duals(w)
    selected = weighted_gradient_seeding(probs, embeddings, w,
                                         min(int(n_instances), embeddings.shape[0]),
                                         rng=check_random_state(random_state))
    return query_result(selected, scores[selected])


def ally_gradient_clusters(learner, X_pool, n_instances=1, *, random_state=None,
                           weight="lambda"):
    """Top ``lambda_hat`` within gradient-space clusters (issue 16's candidate).

    BADGE's k-means++ seeding in gradient-embedding space (unweighted) draws ``b`` seeds;
    every pool point joins its nearest seed, and each of these ``b`` clusters gives its
    highest predicted multiplier (the paper's equitable rule, :func:`priority_order`,
    on clusters of BADGE's geometry). ``weight="none"``: the seeds themselves (BADGE).
    """
    net, embeddings, scores, probs = _gradient_inputs(learner, X_pool)
    n = min(int(n_instances), embeddings.shape[0])
    seeds = weighted_gradient_seeding(probs, embeddings,
                                      torch.ones(embeddings.shape[0], dtype=torch.float64),
                                      n, rng=check_random_state(random_state))
    if weight == "none" or not getattr(net, "dual_head_fitted_", False):
        return query_result(seeds, scores[seeds])
    a, e = gradient_factors(probs.double()), embeddings.double()
    a_sq, e_sq = (a * a).sum(dim=1), (e * e).sum(dim=1)
    g_sq = a_sq * e_sq
    nearest = torch.full((e.shape[0],), float("inf"), dtype=torch.float64)
    labels = torch.zeros(e.shape[0], dtype=torch.int64)
    for k, seed in enumerate(seeds):
        d2 = _gradient_sq_distances_to(a, e, a_sq, e_sq, g_sq, int(seed))
        closer = d2 < nearest
        labels[closer] = k
        nearest = torch.where(closer, d2, nearest)
    selected = priority_order(scores, labels.numpy(), n)[:n]
    return query_result(selected, scores[selected])


def ally_dask(learner, X_pool, n_instances=1, *, random_state=None, blocks=8):
    """The package's default rule on the pool as a Dask array of ``blocks`` row blocks
    (dask's threaded scheduler): its two-round selection, per block and on the union."""
    import dask.array as da

    from modal_ally import ally_query_strategy

    net = getattr(learner, "estimator", learner)
    pool = da.from_array(np.asarray(X_pool), chunks=(-(-len(X_pool) // blocks),
                                                     *np.shape(X_pool)[1:]))
    result = ally_query_strategy(net, pool, n_instances, random_state=random_state)
    indices = np.asarray(result[0] if isinstance(result, tuple) else result)
    scores = net.predict_dual(np.asarray(X_pool)[indices], head="pool")
    return query_result(indices, scores)
