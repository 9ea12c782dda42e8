"""Shared, seeded fixtures: data sets and fitted nets (module-scoped: fitted once)."""

import os

# Subprocesses the tests start (the README example, the modAL 0.4.2.1 driver) inherit
# this: one OpenMP thread, as below for the test process itself.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split

from modal_ally import PDCLNet, PDCLRegressor

# The networks under test are small: a second OpenMP thread only adds synchronization,
# and on a busy 2-core machine it makes a fit 10-50 times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    """Digits split into a labeled set (200), a pool (900) and a test set."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y)
    return {"X_train": X_rest[:200], "y_train": y_rest[:200],
            "X_pool": X_rest[200:1100], "y_pool": y_rest[200:1100],
            "X_test": X_test, "y_test": y_test}


@pytest.fixture(scope="module")
def fitted_net(digits):
    return PDCLNet(max_epochs=30, random_state=0).fit(digits["X_train"], digits["y_train"])


@pytest.fixture(scope="session")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    return X[:300], y[:300], X[300:], y[300:]


@pytest.fixture(scope="module")
def fitted_regressor(diabetes):
    X, y, _, _ = diabetes
    return PDCLRegressor(max_epochs=30, random_state=0).fit(X, y)
