"""What the journal does to a modAL learner: the pool's keys checked, labels decoded,
the learner refitted on its labeled set, all or nothing."""

from __future__ import annotations

import contextlib
import numbers

import numpy as np

from ._guard import restore_on_error
from ._journal_db import encode
from .modal_patches import _pdcl_net_of, _restorer

__all__ = ["consensus_prior", "fit", "labels_array", "pool_keys", "unchanged_on_error"]


def pool_keys(X_pool, keys):
    """The JSON text of each row's key (default: the row positions), checked."""
    n = len(X_pool)
    if keys is None:
        return [encode(i) for i in range(n)]
    keys = list(keys.tolist() if hasattr(keys, "tolist") else keys)
    if len(keys) != n:
        raise ValueError(f"X_pool has {n} rows but keys has {len(keys)}: give one key per row")
    bad = [k for k in keys if isinstance(k, bool) or not isinstance(k, (numbers.Integral, str))]
    if bad:
        raise TypeError("keys must be ints or strings (the rows' ids in your pool), "
                        f"got {bad[0]!r}")
    encoded = [encode(k) for k in keys]
    if len(set(encoded)) != n:
        raise ValueError("keys repeat a value: give each row of X_pool its own key")
    return encoded


def labels_array(values):
    """Decoded JSON labels as an array (ints, floats or strings, as they were given)."""
    return np.asarray(values)


@contextlib.contextmanager
def unchanged_on_error(learner):
    """On an exception, the learner (its attributes, a Pipeline's steps) and its PDCL net
    are put back as they were on entry."""
    restore = _restorer(learner)
    net = _pdcl_net_of(getattr(learner, "estimator", None))
    with restore_on_error(net) if net is not None else contextlib.nullcontext():
        try:
            yield
        except BaseException:
            restore()
            raise


def fit(learner, X_new, y_new, y_old):
    """Give ``learner`` the new rows and (where ``y_old`` is not None) the new labels of
    its old ones, and refit it on its whole labeled set. A learner that keeps no labeled
    set (a ``DeepActiveLearner``) gets every labeled row in ``X_new``."""
    if not hasattr(learner, "X_training"):
        learner.teach(X_new, y_new, warm_start=False)
        return
    if y_old is not None:
        learner.y_training = y_old
    if len(y_new):
        learner.teach(X_new, y_new)
    else:
        learner._fit_to_known()


def consensus_prior(learner, X_rows, answers):
    """The consensus's tie-breaking prior of the labeled rows ``X_rows`` and the model's
    classes, as :func:`~modal_ally.relabel` decides ties by default: for a row with
    several answers, the share of each class among the labels of its nearest labeled
    rows in the PDCL net's embedding, the model's probabilities counted as one more
    neighbour (:func:`~modal_ally.relabeling.neighbor_prior`; the neighbours' labels are
    the consensus the model's probabilities alone decide); the model's probabilities
    where the model is not a PDCL net (None, None: a regressor, a model not fitted yet,
    or answers naming classes the model has not seen)."""
    if not answers.classification:
        return None, None
    try:
        classes = np.asarray(learner.estimator.classes_)
        probabilities = learner.predict_proba(X_rows)
    except Exception:  # noqa: BLE001 - not fitted yet: no prior, plain votes
        return None, None
    if not set(answers.labels.tolist()) <= set(classes.tolist()):
        return None, None
    net = _pdcl_net_of(learner.estimator)
    asked = np.flatnonzero(answers.counts() >= 2)
    if net is None or not asked.size or len(probabilities) < 2:
        return probabilities, classes
    from ._inference import embed, resolve_pipeline
    from ._neighbors import neighbor_prior

    _, X_seen, _ = resolve_pipeline(learner.estimator, X_rows)
    labels = answers.consensus(probabilities, classes=classes)
    prior = np.array(probabilities, dtype=np.float64, copy=True)
    prior[asked] = neighbor_prior(embed(net, X_seen, name="the labeled rows"), labels,
                                  classes, asked, probabilities[asked])
    return prior, classes
