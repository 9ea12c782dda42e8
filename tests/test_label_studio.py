"""modal_ally.label_studio without a server: the score order, the annotation order, the
checks of the bridge's arguments, and the two errors that need no server (nothing
listening at the URL; a token the SDK refuses before sending it). Everything that needs
Label Studio's answers runs against a real server in tests/test_label_studio_server.py.
"""

import datetime
import importlib.util

import numpy as np
import pytest
from modAL.models import ActiveLearner

from modal_ally import ally_query_strategy
from modal_ally.label_studio import (
    LabelStudioAuthError,
    LabelStudioBridge,
    LabelStudioConnectionError,
    annotation_order,
    priority_scores,
)

needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("label_studio_sdk") is None,
    reason="the label-studio extra is not installed: pip install -e '.[label-studio]' "
           "(make test does)")


@pytest.fixture(scope="module")
def learner(digits, fitted_net):
    return ActiveLearner(estimator=fitted_net, query_strategy=ally_query_strategy,
                         X_training=digits["X_train"], y_training=digits["y_train"])


def refresh_token(expires_in_s):
    """A JWT shaped like Label Studio's personal access tokens (a refresh token)."""
    import jwt

    expires = datetime.datetime.now(datetime.timezone.utc) \
        + datetime.timedelta(seconds=expires_in_s)
    return jwt.encode({"token_type": "refresh", "exp": expires, "user_id": "1"},
                      "a test key of at least thirty-two bytes",
                      algorithm="HS256")


def free_port():
    from tests.label_studio_server import free_port

    return free_port()


def test_lowest_score_is_the_first_to_label():
    order = np.array([3, 0, 4, 1, 2])
    scores = priority_scores(order)
    np.testing.assert_allclose(scores[order], [0.0, 0.2, 0.4, 0.6, 0.8])
    assert np.argmin(scores) == order[0]  # Label Studio serves the lowest score first
    np.testing.assert_array_equal(np.argsort(scores), order)


def test_annotation_order_is_the_query_then_the_predicted_duals(learner, digits):
    X_pool = digits["X_pool"][:200]
    order = annotation_order(learner, X_pool, 7, random_state=0)
    assert sorted(order.tolist()) == list(range(200))
    picks, _ = learner.query(X_pool, n_instances=7, random_state=0)
    np.testing.assert_array_equal(order[:7], np.asarray(picks))
    duals = learner.estimator.predict_dual(X_pool)[order[7:]]
    assert np.all(np.diff(duals) <= 0)  # the rest: highest predicted dual first


@needs_sdk
def test_bridge_checks_its_arguments(learner, digits):
    X_pool = digits["X_pool"][:10]
    ids = np.arange(100, 110)
    kwargs = dict(labels=range(10), url="http://127.0.0.1:1", api_key="token")
    for bad_ids, error, match in ((ids[:9], ValueError, "X_pool has 10 rows but task_ids has 9"),
                                  (np.r_[ids[:9], 100], ValueError, "repeat a task"),
                                  (ids.astype(float), TypeError, "integers")):
        with pytest.raises(error, match=match):
            LabelStudioBridge(learner, 1, X_pool, bad_ids, **kwargs)
    with pytest.raises(ValueError, match="labels is empty"):
        LabelStudioBridge(learner, 1, X_pool, ids, **{**kwargs, "labels": []})
    with pytest.raises(ValueError, match="repeat a value once written as text"):
        LabelStudioBridge(learner, 1, X_pool, ids, **{**kwargs, "labels": [1, "1"]})
    with pytest.raises(ValueError, match="give url and api_key"):
        LabelStudioBridge(learner, 1, X_pool, ids, labels=range(10), url="http://x")


@needs_sdk
def test_nothing_listening_is_a_clear_error_and_teaches_nothing(learner, digits):
    X_pool = digits["X_pool"][:10]
    url = f"http://127.0.0.1:{free_port()}"
    bridge = LabelStudioBridge(learner, 1, X_pool, np.arange(10), labels=range(10), url=url,
                               api_key=refresh_token(3600))
    X_training, n_labeled = learner.X_training, len(learner.y_training)
    for call in (bridge.pull, lambda: bridge.push_scores(3, random_state=0)):
        with pytest.raises(LabelStudioConnectionError, match=f"cannot reach Label Studio at {url}"):
            call()
        assert learner.X_training is X_training and len(learner.y_training) == n_labeled
        assert not hasattr(learner, "label_studio_taught_")


@needs_sdk
def test_expired_token_is_refused_before_any_request(learner, digits):
    with pytest.raises(LabelStudioAuthError, match="refused the access token.*expired"):
        LabelStudioBridge(learner, 1, digits["X_pool"][:10], np.arange(10), labels=range(10),
                          url=f"http://127.0.0.1:{free_port()}", api_key=refresh_token(-60))


@needs_sdk
@pytest.mark.parametrize("url,api_key,match", [
    ("http://127.0.0.1:1", "", "api_key is empty"),
    ("http://127.0.0.1:1", "   ", "api_key is empty"),
    ("localhost:8080", "token", "url must be the Label Studio server's address")])
def test_empty_token_and_bad_url_are_named(learner, digits, url, api_key, match):
    with pytest.raises(ValueError, match=match):
        LabelStudioBridge(learner, 1, digits["X_pool"][:10], np.arange(10), labels=range(10),
                          url=url, api_key=api_key)


@needs_sdk
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/api", "http://127.0.0.1:8080/api/",
                                 " http://127.0.0.1:8080/ "])
def test_url_ending_in_api_is_the_server_root(learner, digits, url):
    bridge = LabelStudioBridge(learner, 1, digits["X_pool"][:10], np.arange(10),
                               labels=range(10), url=url, api_key=refresh_token(3600))
    assert bridge.url == "http://127.0.0.1:8080"


@needs_sdk
def test_journal_must_be_the_bridges_pool(learner, digits, tmp_path):
    from modal_ally.journal import Journal

    X_pool = digits["X_pool"][:10]
    make = lambda journal: LabelStudioBridge(  # noqa: E731
        learner, 1, X_pool, np.arange(100, 110), labels=range(10),
        url="http://127.0.0.1:1", api_key=refresh_token(3600), journal=journal)
    with pytest.raises(ValueError, match="the journal's pool is not the bridge's"):
        make(Journal(tmp_path / "a.sqlite", X_pool))  # keyed by position, not task id
    with pytest.raises(TypeError, match="journal must be a Journal or a file path"):
        make(3)
    bridge = make(tmp_path / "b.sqlite")
    assert bridge.taught == {}
    with pytest.raises(ValueError, match="teach the tasks the learner starts with"):
        bridge.record_taught([100])
    no_journal = make(None)
    with pytest.raises(ValueError, match="second opinions need a journal"):
        no_journal.push_scores(3, second_opinions=True)
