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
