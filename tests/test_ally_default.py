"""ALLY's default rule (lambda-weighted k-means++ in gradient space) against the paper's."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modal_ally import ally_query_strategy
from modal_ally.strategies import kmeans_pp_gradient_selection
from modal_ally.strategies.ally import (
    DRAW_TEMPERATURE,
    dual_weighted_selection,
    validate_ally_query,
)
from modal_ally.strategies.badge import _class_probabilities
from tests.helpers import mislabeled_setup

ROOT = str(Path(__file__).resolve().parents[1])


def indices_of(result):
    return result[0] if isinstance(result, tuple) else result


def _query(net, X_pool, n, seed, **options):
    options = {"n_clusters": None, "max_dual": None, "skip_top_quantile": None,
               "cluster_components": 32, **options}
    return validate_ally_query(net, X_pool, n, strategy="test", random_state=seed, **options)


def test_default_is_deterministic_and_differs_from_the_paper(fitted_net, digits):
    X_pool = digits["X_pool"]
    first = indices_of(ally_query_strategy(fitted_net, X_pool, 40, random_state=5))
    again = indices_of(ally_query_strategy(fitted_net, X_pool, 40, random_state=5))
    other = indices_of(ally_query_strategy(fitted_net, X_pool, 40, random_state=6))
    paper = indices_of(ally_query_strategy(fitted_net, X_pool, 40, method="paper",
                                           random_state=5))
    np.testing.assert_array_equal(first, again)
    assert len(set(first)) == 40 and not np.array_equal(np.sort(first), np.sort(other))
    assert not np.array_equal(np.sort(first), np.sort(paper))


@pytest.mark.parametrize("temperature", [None, 1.0, 0.5])
def test_without_weights_it_is_badge_on_sharpened_probabilities(fitted_net, digits,
                                                                 temperature):
    """Without the duals and without the projection, the rule is BADGE's selection on
    the class probabilities at the draw's temperature (1: BADGE's own)."""
    X_pool = digits["X_pool"]
    query = _query(fitted_net, X_pool, 30, 2, temperature=temperature)
    selected, _ = dual_weighted_selection(query, weighted=False, n_components=None)
    embeddings = torch.as_tensor(fitted_net.embed(X_pool))
    probs = _class_probabilities(fitted_net, embeddings).double()
    power = 1.0 / (DRAW_TEMPERATURE if temperature is None else temperature)
    sharpened = probs ** power / (probs ** power).sum(dim=1, keepdim=True)
    badge, _ = kmeans_pp_gradient_selection(sharpened.float(), embeddings, 30,
                                            random_state=2)
    np.testing.assert_array_equal(selected, badge)


def test_sharpened_factors_keep_the_argmax_and_shrink_the_confident_rows():
    from modal_ally._seeding import gradient_factors

    probs = torch.tensor([[0.90, 0.05, 0.05], [0.40, 0.35, 0.25], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(gradient_factors(probs, 1.0), gradient_factors(probs))
    plain, sharp = gradient_factors(probs), gradient_factors(probs, 0.25)
    assert torch.isfinite(sharp).all()  # a probability of exactly 0 stays 0
    np.testing.assert_allclose(sharp[2], [0.0, 0.0, 0.0], atol=1e-7)
    expected = probs[0] ** 4 / (probs[0] ** 4).sum()
    np.testing.assert_allclose(sharp[0], expected - torch.tensor([1.0, 0.0, 0.0]),
                               rtol=1e-5)
    norms, plain_norms = sharp.norm(dim=1), plain.norm(dim=1)
    # the confident row's factor shrinks far more than the uncertain row's
    assert norms[0] / plain_norms[0] < 0.1 < norms[1] / plain_norms[1]


def test_temperature_is_checked(fitted_net, digits):
    X_pool = digits["X_pool"]
    for bad in (0, -1.0, float("nan"), float("inf"), True, "low"):
        with pytest.raises(ValueError, match="temperature must be a finite number"):
            ally_query_strategy(fitted_net, X_pool, 5, temperature=bad)
    with pytest.raises(ValueError, match="temperature applies to method='default'"):
        ally_query_strategy(fitted_net, X_pool, 5, method="paper", temperature=0.5)
    at_one = indices_of(ally_query_strategy(fitted_net, X_pool, 20, random_state=3,
                                            temperature=1.0))
    default = indices_of(ally_query_strategy(fitted_net, X_pool, 20, random_state=3))
    assert not np.array_equal(np.sort(at_one), np.sort(default))


def test_the_duals_steer_the_draws(fitted_net, digits):
    X_pool = digits["X_pool"]
    dual = fitted_net.predict_dual(X_pool, head="pool")  # what the default rule reads
    weighted, unweighted = [], []
    for seed in range(5):
        with_duals, _ = dual_weighted_selection(_query(fitted_net, X_pool, 40, seed))
        without, _ = dual_weighted_selection(_query(fitted_net, X_pool, 40, seed),
                                             weighted=False)
        weighted.append(dual[with_duals].mean())
        unweighted.append(dual[without].mean())
    assert np.mean(weighted) > np.mean(unweighted)
    # the first pick maximizes lambda_hat * |g|^2, not |g|^2 alone
    first = indices_of(ally_query_strategy(fitted_net, X_pool, 1, random_state=0))[0]
    assert dual[first] >= np.quantile(dual, 0.5)


def test_default_outlier_guard_never_draws_guarded_points(digits):
    net, X_pool, _ = mislabeled_setup(digits)
    dual = net.predict_dual(X_pool, head="pool")  # what the default rule reads
    guarded = indices_of(ally_query_strategy(net, X_pool, 20, random_state=0,
                                             skip_top_quantile=0.15))
    skipped = np.argsort(-dual, kind="stable")[:int(0.15 * len(X_pool))]
    assert not set(guarded) & set(skipped)
    capped = indices_of(ally_query_strategy(net, X_pool, 20, random_state=0,
                                            max_dual=float(np.quantile(dual, 0.5))))
    assert (dual[capped] <= np.quantile(dual, 0.5) + 1e-6).all()


def test_method_and_n_clusters_are_checked(fitted_net, digits):
    X_pool = digits["X_pool"]
    with pytest.raises(ValueError, match="method"):
        ally_query_strategy(fitted_net, X_pool, 5, method="fast")
    with pytest.raises(ValueError, match="n_clusters applies to method='paper'"):
        ally_query_strategy(fitted_net, X_pool, 5, n_clusters=3)
    assert len(indices_of(ally_query_strategy(fitted_net, X_pool, 5, method="paper",
                                              n_clusters=3, random_state=0))) == 5


def test_default_on_a_regressor_is_weighted_kmeanspp_on_embeddings(fitted_regressor,
                                                                   diabetes):
    _, _, X_pool, _ = diabetes
    chosen = indices_of(ally_query_strategy(fitted_regressor, X_pool, 12, random_state=1))
    assert len(set(chosen)) == 12
    again = indices_of(ally_query_strategy(fitted_regressor, X_pool, 12, random_state=1))
    np.testing.assert_array_equal(chosen, again)
    # the whole pool can be taken (the fill after every D^2 is 0)
    everything = indices_of(ally_query_strategy(fitted_regressor, X_pool[:15], 15,
                                                random_state=1))
    assert sorted(everything) == list(range(15))


def test_shrunk_duals_keep_every_point_drawable():
    from modal_ally.strategies.ally import shrunk_duals

    scores = torch.tensor([0.0, 0.0, 1.0, 3.0])
    weights = shrunk_duals(scores)
    assert weights.dtype == torch.float64
    np.testing.assert_allclose(weights.numpy(), [1.0, 1.0, 2.0, 4.0])  # + mean 1.0
    assert shrunk_duals(torch.zeros(3)).eq(0).all()  # no information: the caller's case
    assert shrunk_duals(torch.zeros(0)).numel() == 0


def test_points_the_dual_head_scores_zero_are_still_drawn(fitted_net, digits, monkeypatch):
    X_pool = digits["X_pool"]
    n = len(X_pool)
    zeroed = np.arange(n) % 2 == 0  # half the pool predicted lambda 0, the rest 1
    fake = torch.as_tensor(np.where(zeroed, 0.0, 1.0), dtype=torch.float32)
    monkeypatch.setattr(type(fitted_net), "predict_dual_from_embeddings",
                        lambda self, e, head="pool", probs=None: fake[:e.shape[0]].clone())
    # the duals alone: at temperature 1 the D^2 of the two halves are alike
    picks = np.concatenate([dual_weighted_selection(
        _query(fitted_net, X_pool, 40, s, temperature=1.0))[0] for s in range(5)])
    from_zeroed = zeroed[picks].mean()
    # weights 0.5 and 1.5: drawable, at a third of the others' rate (up to D^2)
    assert 0.05 < from_zeroed < 0.45


# ----------------------------------------------------------------- the streamed fast rule
def _gradient_cost(net, X_pool, picks, weights):
    """The default rule's objective in the exact gradient space (the probabilities at
    the draw's temperature): every pool point's draw weight times its squared distance
    to the nearest pick."""
    from modal_ally._seeding import gradient_factors, nearest_centers

    embeddings = torch.as_tensor(net.embed(X_pool)).double()
    a = gradient_factors(_class_probabilities(net, embeddings.float()).double(),
                         DRAW_TEMPERATURE)
    picks = torch.as_tensor(picks)
    d2, _ = nearest_centers(a, embeddings, a[picks], embeddings[picks])
    return float((weights.cpu() * d2).sum())


def test_the_projection_costs_little_against_the_exact_rule(fitted_net, digits):
    """The default draws in a 32-dimensional projection of the 256-d embeddings; its
    batches' k-means cost in the exact gradient space stays near the exact rule's
    (5 seeds: measured 0.96-1.01 on digits, MNIST, the 26-class task, Parkinsons;
    docs/scaling.md), and far from a random batch's."""
    from modal_ally.strategies.ally import draw_weights

    X_pool = digits["X_pool"]
    fast, exact, rand = [], [], []
    for seed in range(5):
        query = _query(fitted_net, X_pool, 30, seed)
        picks, scores = dual_weighted_selection(query)
        weights = draw_weights(query, scores)
        fast.append(_gradient_cost(fitted_net, X_pool, picks, weights))
        exact_picks, _ = dual_weighted_selection(_query(fitted_net, X_pool, 30, seed),
                                                 n_components=None)
        exact.append(_gradient_cost(fitted_net, X_pool, exact_picks, weights))
        random_picks = np.random.RandomState(seed).choice(len(X_pool), 30, replace=False)
        rand.append(_gradient_cost(fitted_net, X_pool, random_picks, weights))
    assert np.mean(fast) <= 1.1 * np.mean(exact), (fast, exact)
    assert np.mean(rand) >= 1.5 * np.mean(exact), (rand, exact)


def test_the_default_keeps_a_projection_never_the_embeddings(fitted_net, digits, monkeypatch):
    """One streamed pass keeps N x (C + 32 + 1) values; the projection is fitted on a
    sample of pool rows read first (here 200 of 900), or on all rows when the sample
    would be the whole pool: the same picks for a numpy, memmap (float64) or torch pool."""
    from modal_ally.strategies import _stream

    X_pool = digits["X_pool"]
    features = _stream.pool_features(_query(fitted_net, X_pool, 10, 0), n_components=32,
                                     factors=True, duals=True)
    assert features.embeddings.shape == (len(X_pool), 32)
    assert features.factors.shape == (len(X_pool), 10) and features.scores.shape == (900,)
    np.testing.assert_allclose(features.scores.numpy(),
                               fitted_net.predict_dual(X_pool, head="pool"), rtol=1e-6, atol=1e-6)
    for sample in (200, 20000):
        monkeypatch.setattr(_stream, "PROJECTION_SAMPLE", sample)
        monkeypatch.setattr("modal_ally.strategies.ally.PROJECTION_SAMPLE", sample)
        expected = indices_of(ally_query_strategy(fitted_net, X_pool, 25, random_state=3))
        for pool in (X_pool.astype(np.float64), torch.as_tensor(X_pool)):
            got = indices_of(ally_query_strategy(fitted_net, pool, 25, random_state=3))
            np.testing.assert_array_equal(got, expected)


def test_memmap_pool_gives_the_same_default_batch(fitted_net, digits, tmp_path):
    pool = digits["X_pool"].astype(np.float64)
    mapped = np.lib.format.open_memmap(tmp_path / "pool.npy", mode="w+", dtype=np.float64,
                                       shape=pool.shape)
    mapped[:] = pool
    mapped.flush()
    reopened = np.load(tmp_path / "pool.npy", mmap_mode="r")
    np.testing.assert_array_equal(
        indices_of(ally_query_strategy(fitted_net, reopened, 20, random_state=1)),
        indices_of(ally_query_strategy(fitted_net, pool, 20, random_state=1)))


def test_seeding_draws_exactly_as_sequential_kmeanspp(monkeypatch):
    """The second and third picks of the fast seeding follow w * D^2 exactly (the
    third drawn from stale distances and accepted by rejection, or after a refresh)."""
    from modal_ally import _seeding

    rng = np.random.RandomState(0)
    logits, z = torch.as_tensor(rng.randn(6, 3)), torch.as_tensor(rng.randn(6, 4))
    a = _seeding.gradient_factors(torch.softmax(logits, dim=1))
    w = torch.as_tensor(rng.rand(6) + 0.2)
    D = _seeding.gradient_sq_distances(a, z, a, z)
    first = int(torch.argmax(w * (a * a).sum(1) * (z * z).sum(1)))
    expected = {}
    second = w * D[:, first]
    for j in range(6):
        third = w * torch.minimum(D[:, first], D[:, j])
        for k in range(6):
            p = float(second[j] / second.sum() * third[k] / third.sum())
            if p > 0:
                expected[(j, k)] = p
    draws = 2000
    for min_pending in (16, 1):  # rejection from stale values; a refresh after each pick
        monkeypatch.setattr(_seeding, "MIN_PENDING", min_pending)
        counts = {}
        draw_rng = np.random.RandomState(min_pending)
        for _ in range(draws):
            picks, _ = _seeding.gradient_seeding(a, z, 3, draw_rng, weights=w)
            assert picks[0] == first
            counts[tuple(picks[1:])] = counts.get(tuple(picks[1:]), 0) + 1
        assert set(counts) <= set(expected)
        chi2 = sum((counts.get(c, 0) - draws * p) ** 2 / (draws * p)
                   for c, p in expected.items())
        assert chi2 < 60, chi2  # 19 degrees of freedom: p < 1e-5 by chance


def test_nearest_distances_without_indices_are_the_same():
    """``indices=False`` (what the seeding's refreshes read: a minimum without its
    position) gives the distances of the full computation, copies of a center at 0."""
    from modal_ally._seeding import gradient_factors, nearest_centers

    rng = np.random.RandomState(0)
    probs = torch.softmax(torch.as_tensor(rng.randn(3000, 6) * 4), dim=1).float()
    a, z = gradient_factors(probs), torch.as_tensor(rng.randn(3000, 9) * 50).float()
    centers = torch.as_tensor(rng.choice(3000, 40, replace=False))
    with_indices, nearest = nearest_centers(a, z, a[centers], z[centers])
    values, none = nearest_centers(a, z, a[centers], z[centers], indices=False)
    assert none is None and nearest.shape == (3000,)
    assert torch.equal(values, with_indices)
    assert bool((values[centers] == 0).all())


def test_exact_nearest_matches_the_difference_form_on_every_center():
    """The rows whose distance may be rounding noise are recomputed in the difference
    form against the centers rounding could make nearest only: the same values and the
    same nearest center (the lowest on ties) as against every center, for copies of a
    center, duplicated centers and rows near two centers."""
    from modal_ally._seeding import (
        _exact_nearest,
        gradient_factors,
        gradient_sq_distances,
        rounding_tolerance,
        row_sq_norms,
    )

    rng = np.random.RandomState(1)
    probs = torch.softmax(torch.as_tensor(rng.randn(400, 5) * 3), dim=1).float()
    a, z = gradient_factors(probs), torch.as_tensor(rng.randn(400, 7) * 30).float()
    centers = torch.as_tensor(np.r_[rng.choice(400, 30, replace=False), [3, 3, 8]])
    ca, cz = a[centers], z[centers]
    rows = torch.as_tensor(np.r_[centers.numpy(), np.arange(200)])
    g_sq = row_sq_norms(a) * row_sq_norms(z)
    c_sq = row_sq_norms(ca) * row_sq_norms(cz)
    tol = rounding_tolerance(a.shape[1] + z.shape[1], a.dtype)
    expected = gradient_sq_distances(a[rows], z[rows], ca, cz).min(dim=1)
    for small in (0, 2**40):  # the chosen centers only; every center at once
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("modal_ally._seeding.SMALL_EXACT", small)
            values, nearest = _exact_nearest(a[rows], z[rows], g_sq[rows], ca, cz, c_sq,
                                             tol)
        assert torch.equal(values, expected.values)
        assert torch.equal(nearest, expected.indices)
        assert bool((values[:centers.shape[0]] == 0).all())


def test_a_reused_workspace_gives_the_same_distances():
    """One :class:`Workspace` reused across calls with growing and shrinking center
    counts (as a seeding's refreshes do) gives the values of fresh buffers."""
    from modal_ally._seeding import Workspace, gradient_factors, nearest_centers

    rng = np.random.RandomState(2)
    probs = torch.softmax(torch.as_tensor(rng.randn(5000, 4) * 4), dim=1).float()
    a, z = gradient_factors(probs), torch.as_tensor(rng.randn(5000, 6)).float()
    workspace = Workspace()
    for m in (1, 300, 17, 1200, 2):
        centers = torch.as_tensor(rng.choice(5000, m, replace=False))
        for indices in (True, False):
            reused = nearest_centers(a, z, a[centers], z[centers], indices=indices,
                                     workspace=workspace)
            fresh = nearest_centers(a, z, a[centers], z[centers], indices=indices)
            assert torch.equal(reused[0], fresh[0])
            if indices:
                assert torch.equal(reused[1], fresh[1])


_FAULTS_SCRIPT = """
import resource, numpy as np, torch
torch.set_num_threads(1)
from modal_ally._seeding import gradient_factors, gradient_seeding
g = torch.Generator().manual_seed(0)
probs = torch.softmax(torch.randn(50000, 10, generator=g) * 3, 1)
a, z = gradient_factors(probs), torch.randn(50000, 32, generator=g)
w = torch.rand(50000, generator=g, dtype=torch.float64)
gradient_seeding(a, z, 1000, np.random.RandomState(0), weights=w)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
gradient_seeding(a, z, 1000, np.random.RandomState(1), weights=w)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc tunables")
def test_seeding_does_not_churn_the_allocator():
    """Under ``MALLOC_TRIM_THRESHOLD_=65536`` (the environment Dask's nanny gives its
    workers) glibc maps every block over 128 KiB afresh: a seeding that allocated its
    products per block faulted in every page each time (88,000 minor faults for 1,000
    picks from 50,000 rows, 0.15 s of system time). With the reused workspace it takes
    about 6,000 (its buffers, once)."""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], env=env, check=True,
                         capture_output=True, text=True, cwd=ROOT)
    assert int(out.stdout.split()[-1]) < 30000, out.stdout


# ------------------------------------------------------------------ memory-mapped pools
def _rss_file_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    return None


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_pass_over_a_memmap_does_not_keep_its_pages(tmp_path):
    """iter_chunks unmaps the pages of the rows it has read (they stay in the page cache):
    a pass over a 64 MiB memmap leaves the process's file-backed resident set about where
    it was, and every block has the file's values, read again too."""
    from modal_ally._inference import iter_chunks

    path = str(tmp_path / "pool.npy")
    pool = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(262144, 32))
    pool[:] = np.arange(262144, dtype=np.float64)[:, None] + np.arange(32) / 64
    pool.flush()
    del pool
    X = np.load(path, mmap_mode="r")
    before = _rss_file_kib()
    for _ in range(2):
        start = 0
        for block in iter_chunks(X, 4096, "cpu", name="X_pool"):
            expected = np.arange(start, start + block.shape[0])[:, None] + np.arange(32) / 64
            np.testing.assert_array_equal(block.numpy(), expected.astype(np.float32))
            start += block.shape[0]
        assert start == 262144
    assert _rss_file_kib() - before < 16 * 1024  # the file is 64 MiB


def test_a_copy_on_write_memmap_keeps_its_changes(tmp_path):
    """mode="c": the changes live in this process's pages only; a pass never drops them."""
    from modal_ally._inference import iter_chunks

    path = str(tmp_path / "pool.npy")
    np.save(path, np.zeros((20000, 8), dtype=np.float32))
    X = np.load(path, mmap_mode="c")
    X[:] = 7.0
    for block in iter_chunks(X, 1000, "cpu", name="X_pool"):
        assert bool((block == 7.0).all())
    assert float(X.min()) == 7.0


_READ_ONLY_SCRIPT = """
import sys, warnings
import numpy as np
from sklearn.datasets import load_digits
from modal_ally import (PDCLNet, ally_query_strategy, badge_query_strategy,
                        coreset_query_strategy)
X, y = load_digits(return_X_y=True)
X = (X / 16).astype(np.float32)
np.save(sys.argv[1], X[100:])
net = PDCLNet(max_epochs=2, random_state=0).fit(X[:100], y[:100])
pool = np.load(sys.argv[1], mmap_mode="r")
warnings.simplefilter("error")
for query in (ally_query_strategy, badge_query_strategy, coreset_query_strategy):
    query(net, pool, 5, random_state=0)
ally_query_strategy(net, pool, 5, random_state=0, method="paper")
net.predict_proba(pool)
print("quiet")
"""


def test_a_read_only_memmap_pool_raises_no_torch_warning(tmp_path):
    """``np.load(..., mmap_mode="r")`` (the documented way to open a pool on disk) gives
    a read-only array; torch warns once per process about turning one into a tensor.
    The package never writes into its input, so no warning reaches the user (a fresh
    process: torch's warning is once per process)."""
    done = subprocess.run([sys.executable, "-c", _READ_ONLY_SCRIPT,
                           str(tmp_path / "pool.npy")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "quiet" in done.stdout, done.stderr[-2000:]
