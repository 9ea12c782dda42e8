"""The selectors and the clustering alone (no skorch, no modAL)."""

import itertools

import numpy as np
import pytest
import torch

from modal_ally.clustering import kmeans
from modal_ally.selection import (
    equitable_selection,
    median_pairwise_distance,
    priority_order,
    select_with_exclusion,
)


def brute_force_equitable(scores, labels, b):
    """DESIGN 1.3 written the slow, obvious way."""
    n = len(scores)
    key = sorted(range(n), key=lambda i: (-scores[i], i))
    k = len(set(labels))
    quota = b // k
    chosen = []
    for cluster in sorted(set(labels)):
        members = [i for i in key if labels[i] == cluster]
        chosen += members[:quota]
    leftovers = [i for i in key if i not in chosen]
    chosen = sorted(chosen, key=lambda i: (-scores[i], i))
    return chosen + leftovers[:b - len(chosen)]


@pytest.mark.parametrize("seed,b,k", list(itertools.product(range(3), (1, 2, 5, 7, 20), (1, 3, 6))))
def test_equitable_selection_matches_definition(seed, b, k):
    rng = np.random.RandomState(seed)
    n = 30
    scores = rng.randint(0, 5, size=n).astype(float)  # many ties
    labels = rng.choice(k, size=n, p=np.r_[0.7, np.full(k - 1, 0.3 / (k - 1))] if k > 1 else None)
    got = equitable_selection(scores, labels, b)
    assert list(got) == brute_force_equitable(scores, labels, b)
    assert len(got) == min(b, n) and len(set(got)) == len(got)


def test_one_cluster_is_plain_top_b():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.3])
    np.testing.assert_array_equal(equitable_selection(scores, np.zeros(5), 3), [1, 3, 2])


def test_each_cluster_gives_its_quota():
    labels = np.repeat(np.arange(4), 25)
    scores = np.r_[np.linspace(1, 2, 25), np.linspace(0, 0.1, 75)]  # cluster 0 dominates
    chosen = equitable_selection(scores, labels, 8)
    assert np.bincount(labels[chosen], minlength=4).tolist() == [2, 2, 2, 2]


def test_small_and_empty_clusters_pass_their_budget_on():
    labels = np.r_[np.zeros(10, int), [1], np.full(10, 3)]  # cluster 2 empty, 1 tiny
    scores = np.arange(21, dtype=float)
    chosen = equitable_selection(scores, labels, 9)  # quota 3 over 3 non-empty clusters
    assert len(chosen) == 9 and len(set(chosen)) == 9
    assert 10 in chosen  # the tiny cluster's only point
    assert np.bincount(labels[chosen], minlength=4)[3] >= 3


def test_budget_larger_than_pool_returns_every_index():
    order = priority_order(np.zeros(5), np.arange(5), 10)
    assert sorted(order) == list(range(5))


def test_kmeans_recovers_separated_blobs_and_is_deterministic():
    rng = np.random.RandomState(0)
    centers = rng.randn(5, 16) * 20
    X = np.concatenate([c + rng.randn(200, 16) for c in centers]).astype(np.float32)
    labels, sq = kmeans(X, 5, random_state=0, n_components=None)
    truth = np.repeat(np.arange(5), 200)
    for cluster in range(5):  # every true blob is one cluster
        assert len(set(labels[truth == cluster])) == 1
    assert len(set(labels)) == 5 and sq.shape == (1000,)
    again, _ = kmeans(torch.as_tensor(X), 5, random_state=0, n_components=None)
    np.testing.assert_array_equal(labels, again)
    projected, _ = kmeans(X, 5, random_state=0, n_components=4)
    assert len(set(zip(projected, truth))) == 5


def test_kmeans_with_more_clusters_than_points_and_duplicates():
    labels, sq = kmeans(np.ones((4, 3), np.float32), 10, random_state=0)
    assert sorted(labels) == [0, 1, 2, 3] and (sq == 0).all()
    labels, _ = kmeans(np.ones((50, 3), np.float32), 5, random_state=0)
    assert labels.shape == (50,)
    with pytest.raises(ValueError, match="empty"):
        kmeans(np.ones((0, 3), np.float32), 2)


def test_exclusion_skips_copies_of_labeled_and_of_each_other():
    rng = np.random.RandomState(0)
    distinct = rng.randn(20, 8).astype(np.float32) * 5
    pool = np.repeat(distinct, 3, axis=0)  # each sample three times
    labeled = distinct[:5]
    order = np.arange(len(pool))
    chosen, near_labeled = select_with_exclusion(order, pool, 10, 0.5,
                                                 labeled_embeddings=labeled)
    assert near_labeled == 15
    originals = chosen // 3
    assert len(set(originals)) == 10 and originals.min() >= 5


def test_exclusion_fills_the_batch_and_warns():
    pool = np.zeros((6, 2), np.float32)
    with pytest.warns(UserWarning, match="filled with"):
        chosen, _ = select_with_exclusion(np.arange(6), pool, 4, 0.1)
    assert sorted(chosen) == [0, 1, 2, 3]


def test_median_pairwise_distance_scale():
    rng = np.random.RandomState(0)
    X = rng.randn(1000, 4).astype(np.float32)
    assert median_pairwise_distance(X, random_state=0) == pytest.approx(
        median_pairwise_distance(3 * X, random_state=0) / 3, rel=1e-5)


@pytest.mark.slow
def test_kmeans_scale_1e5_points_k_1000():
    import time

    X = np.random.RandomState(0).randn(100_000, 256).astype(np.float32)
    start = time.perf_counter()
    labels, _ = kmeans(X, 1000, random_state=0)
    assert time.perf_counter() - start < 60
    assert labels.shape == (100_000,) and len(set(labels)) > 900


def test_exact_copies_are_at_distance_zero_whatever_their_norm():
    rng = np.random.RandomState(0)
    distinct = (rng.randn(300, 256) * 30 + 100).astype(np.float32)  # large norms
    pool = np.concatenate([distinct[:40], distinct[100:]])
    chosen, near_labeled = select_with_exclusion(np.arange(len(pool)), pool, 50, 1e-4,
                                                 labeled_embeddings=distinct[:40])
    assert near_labeled == 40 and chosen.min() >= 40
