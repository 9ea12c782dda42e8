"""Assertions shared by the test modules."""

import numpy as np
import torch


def snapshot(net):
    """Everything a failed call must leave unchanged on a fitted net."""
    state = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}
    head = {k: v.detach().clone() for k, v in net.dual_head_.state_dict().items()}
    return state, head, net.lambdas_.copy(), len(net.history)


def assert_unchanged(net, before):
    state, head, lambdas, n_epochs = before
    for key, value in net.module_.state_dict().items():
        assert torch.equal(value, state[key]), key
    for key, value in net.dual_head_.state_dict().items():
        assert torch.equal(value, head[key]), key
    np.testing.assert_array_equal(net.lambdas_, lambdas)
    assert len(net.history) == n_epochs


def mislabeled_setup(digits):
    """A PDCLNet fitted with 15 flipped labels, and a pool of 300 rows plus near-copies
    of the mislabeled rows (the largest lambdas); returns ``net, X_pool, is_outlier``."""
    from modal_ally import PDCLNet

    X, y = digits["X_train"], digits["y_train"].copy()
    rng = np.random.RandomState(1)
    flipped = rng.choice(len(y), 15, replace=False)
    y[flipped] = (y[flipped] + 5) % 10
    net = PDCLNet(max_epochs=30, random_state=0).fit(X, y)
    outliers = X[flipped] + rng.normal(0, 0.01, X[flipped].shape).astype(np.float32)
    X_pool = np.concatenate([digits["X_pool"][:300], outliers])
    return net, X_pool, np.arange(len(X_pool)) >= 300
