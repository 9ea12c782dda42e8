"""scikit-learn Pipelines ending in a network, as modAL learners' estimators.

modAL's own strategies call ``learner.predict_proba`` and so accept
``make_pipeline(StandardScaler(), PDCLNet())``; the strategies here need the network
itself (its embeddings and dual head), so they pass the pool through the pipeline's
preprocessing steps and query with its final step.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from ._validation import get_estimator

__all__ = ["resolve_net"]


def _identity(X, what=None):
    return X


def resolve_net(learner, X_pool, *, name: str = "X_pool"):
    """The network behind ``learner`` and the pool as that network sees it.

    Parameters
    ----------
    learner : modAL learner, estimator or Pipeline
        ``learner.estimator`` (or ``learner`` itself) is a net, or a Pipeline whose
        last step is one.
    X_pool : array-like
        The pool in the learner's input space.

    Returns
    -------
    net : estimator
        The Pipeline's last step, or the estimator itself.
    X_pool : array-like
        The pool transformed by the Pipeline's other steps (unchanged otherwise).
    transform : callable
        The same transformation, for other inputs (e.g. the labeled set).
    """
    estimator = get_estimator(learner)
    if not isinstance(estimator, Pipeline):
        return estimator, X_pool, _identity
    net = estimator.steps[-1][1]
    if len(estimator.steps) == 1:
        return net, X_pool, _identity
    preprocessing = estimator[:-1]

    def transform(X, what=name):
        try:
            return preprocessing.transform(X)
        except NotFittedError:
            raise
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{what} could not be passed through the pipeline's "
                            f"preprocessing steps: {exc}") from exc

    return net, transform(X_pool), transform
