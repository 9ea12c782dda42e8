"""Generative mode: gradient ascent on inputs of the predicted dual variable (DESIGN 1.5)."""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from modal_ally import MLP, PDCLNet
from modal_ally.generative import GenerativeResult, generate_informative


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


@pytest.fixture(scope="module")
def net(digits):
    X, y = digits
    return PDCLNet(max_epochs=20, random_state=0).fit(X[:300], y[:300])


@pytest.fixture(scope="module")
def pool(digits):
    return digits[0][300:340]


@pytest.fixture(scope="module")
def result(net, pool):
    return generate_informative(net, pool, n_steps=50, step_size=0.01, bounds=(0, 1))


def _state(net):
    return {name: t.detach().clone()
            for module in (net.module_, net.dual_head_)
            for name, t in module.state_dict().items()}


def _grads(net):
    # fit leaves the last step's parameter gradients behind: they must stay as they are
    return [None if p.grad is None else p.grad.clone()
            for module in (net.module_, net.dual_head_) for p in module.parameters()]


def test_shapes_and_start(result, pool):
    assert isinstance(result, GenerativeResult)
    assert result.trajectory.shape == (51, *pool.shape)
    assert result.trajectory.dtype == np.float32
    assert result.dual.shape == (51, pool.shape[0])
    assert result.dual.dtype == np.float32
    np.testing.assert_array_equal(result.trajectory[0], pool)
    np.testing.assert_array_equal(result.final, result.trajectory[-1])
    np.testing.assert_array_equal(result.dual_gain, result.dual[-1] - result.dual[0])


def test_predicted_dual_rises(result):
    dual = result.dual
    assert (dual >= 0).all()
    assert np.mean(dual[-1] > dual[0]) >= 0.95
    mean = dual.mean(axis=1)
    assert mean[-1] > 1.2 * mean[0]
    steps = np.diff(mean)
    # nearly monotone: almost every step raises the mean, and no step loses much
    assert np.mean(steps > 0) >= 0.9
    assert steps.min() > -0.01 * (mean[-1] - mean[0])


def test_dual_matches_predict_dual(result, net):
    """The ascent follows the paper's head (the paper's Figure 1)."""
    for k in (0, 25, 50):
        paper = net.predict_dual_from_embeddings(net.embed(result.trajectory[k]),
                                                 head="paper").numpy()
        np.testing.assert_allclose(paper, result.dual[k], rtol=1e-5, atol=1e-6)


def test_inputs_stay_within_bounds(result):
    assert result.trajectory.min() >= 0.0
    assert result.trajectory.max() <= 1.0
    # the inputs actually moved
    assert np.abs(result.final - result.trajectory[0]).max() > 0.05


def test_array_bounds(net, pool):
    low = np.zeros(64, dtype=np.float32)
    high = np.full(64, 0.5, dtype=np.float32)
    high[:8] = 0.2  # a tighter first row of pixels
    start = np.clip(pool[:5], 0, 0.2)
    res = generate_informative(net, start, n_steps=10, step_size=0.1, bounds=(low, high))
    assert (res.trajectory[1:] >= low).all()
    assert (res.trajectory[1:] <= high).all()
    assert (res.trajectory[1:, :, :8] <= 0.2).all()


def test_unbounded_and_unnormalized(net, pool):
    res = generate_informative(net, pool[:10], n_steps=20, step_size=0.05,
                               normalize_gradient=False)
    assert res.trajectory.shape == (21, 10, 64)
    assert res.dual[-1].mean() > res.dual[0].mean()
    # a step of normalize_gradient=True has length step_size (before projection)
    res = generate_informative(net, pool[:10], n_steps=3, step_size=0.05)
    lengths = np.linalg.norm(np.diff(res.trajectory, axis=0), axis=2)
    np.testing.assert_allclose(lengths, 0.05, rtol=1e-4)


def test_estimator_unchanged(net, pool):
    before = _state(net)
    grads = _grads(net)
    dual_before = net.predict_dual(pool)
    net.module_.train(True)  # modes are restored, whatever they were
    net.dual_head_.train(False)
    try:
        generate_informative(net, pool[:5], n_steps=5, step_size=0.05, bounds=(0, 1))
        assert net.module_.training
        assert not net.dual_head_.training
    finally:
        net.module_.train(False)
    after = _state(net)
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    for old, new in zip(grads, _grads(net)):
        assert (old is None and new is None) or torch.equal(old, new)
    np.testing.assert_array_equal(net.predict_dual(pool), dual_before)


def test_tensor_input_and_learner(net, pool):
    res_np = generate_informative(net, pool[:4], n_steps=3)
    tensor = torch.from_numpy(pool[:4].copy())
    res_t = generate_informative(net, tensor, n_steps=3)
    np.testing.assert_allclose(res_t.trajectory, res_np.trajectory, rtol=1e-6)
    assert torch.equal(tensor, torch.from_numpy(pool[:4]))  # input not modified

    class Learner:  # a modAL learner exposes the net as .estimator
        estimator = net

    res_l = generate_informative(Learner(), pool[:4], n_steps=3)
    np.testing.assert_allclose(res_l.dual, res_np.dual)


def test_chunks_give_the_same_result(net, pool):
    whole = generate_informative(net, pool[:10], n_steps=5, step_size=0.05, bounds=(0, 1))
    previous = net.chunk_size
    net.chunk_size = 3
    try:
        chunked = generate_informative(net, pool[:10], n_steps=5, step_size=0.05,
                                       bounds=(0, 1))
    finally:
        net.chunk_size = previous
    np.testing.assert_allclose(chunked.trajectory, whole.trajectory, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chunked.dual, whole.dual, rtol=1e-5, atol=1e-6)


def test_image_shaped_inputs(digits):
    X, y = digits
    images = X[:200].reshape(-1, 1, 8, 8)
    net = PDCLNet(MLP, max_epochs=3, random_state=0).fit(images, y[:200])
    res = generate_informative(net, images[:3], n_steps=4, step_size=0.05, bounds=(0, 1))
    assert res.trajectory.shape == (5, 3, 1, 8, 8)
    assert res.dual.shape == (5, 3)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_steps": 0}, ValueError, "n_steps must be >= 1"),
    ({"n_steps": 2.5}, TypeError, "n_steps must be an integer"),
    ({"n_steps": True}, TypeError, "n_steps must be an integer"),
    ({"step_size": 0.0}, ValueError, "step_size"),
    ({"step_size": -0.1}, ValueError, "step_size"),
    ({"step_size": float("nan")}, ValueError, "step_size"),
    ({"bounds": (1.0, 0.0)}, ValueError, "low <= high"),
    ({"bounds": (0.0,)}, ValueError, "pair"),
    ({"bounds": 1.0}, ValueError, "pair"),
    ({"bounds": (np.zeros(3), 1.0)}, ValueError, "does not broadcast"),
    ({"bounds": (float("nan"), 1.0)}, ValueError, "NaN"),
    ({"bounds": ("a", 1.0)}, TypeError, "numeric"),
    ({"normalize_gradient": "yes"}, TypeError, "normalize_gradient"),
])
def test_bad_options(net, pool, kwargs, error, match):
    before = _state(net)
    with pytest.raises(error, match=match):
        generate_informative(net, pool[:3], **kwargs)
    after = _state(net)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_inputs(net, pool):
    with pytest.raises(ValueError, match="features"):
        generate_informative(net, pool[:, :10])
    bad = pool[:3].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        generate_informative(net, bad)
    with pytest.raises(ValueError, match="empty"):
        generate_informative(net, pool[:0])
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        generate_informative(net, "digits")


def test_bad_estimators(digits, pool):
    X, y = digits
    with pytest.raises(NotFittedError):
        generate_informative(PDCLNet(), pool)
    with pytest.raises(TypeError, match="PDCLNet or PDCLRegressor"):
        generate_informative(LogisticRegression().fit(X[:100], y[:100]), pool)
    # epsilon above every loss: all multipliers 0, nothing to ascend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        flat = PDCLNet(max_epochs=1, epsilon=100.0, random_state=0).fit(X[:100], y[:100])
    assert not flat.dual_head_fitted_
    state = copy.deepcopy(flat.lambdas_)
    with pytest.raises(ValueError, match="dual head is not fitted"):
        generate_informative(flat, pool)
    np.testing.assert_array_equal(flat.lambdas_, state)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda(digits, pool):
    X, y = digits
    net = PDCLNet(max_epochs=5, random_state=0, device="cuda").fit(X[:300], y[:300])
    res = generate_informative(net, pool[:5], n_steps=5, step_size=0.05, bounds=(0, 1))
    assert isinstance(res.trajectory, np.ndarray)
    np.testing.assert_allclose(net.predict_dual(res.trajectory[-1]), res.dual[-1],
                               rtol=1e-4, atol=1e-5)
    res_t = generate_informative(net, torch.from_numpy(pool[:5]).cuda(), n_steps=5,
                                 step_size=0.05, bounds=(0, 1))
    np.testing.assert_allclose(res_t.dual, res.dual, rtol=1e-4, atol=1e-5)
