"""modAL 0.4.1 and 0.4.2.1 on today's scikit-learn and pandas, and a ``teach`` that
changes nothing when it fails.

modAL-python is unmaintained (last release June 2023). :func:`apply`, run once by
``import modal_ally``, makes three narrow changes to modAL, each only where the installed
versions need it (found from signatures and behaviour, not from version numbers);
:func:`revert` undoes them and :func:`applied` names those in force. To leave modAL
untouched, set the environment variable ``MODAL_ALLY_PATCH_MODAL=0`` before importing
modal_ally.

``check_X_y``
    modAL's learners call scikit-learn's ``check_X_y(..., force_all_finite=...)``.
    scikit-learn 1.6 renamed that keyword ``ensure_all_finite`` (a FutureWarning at every
    ``teach``) and 1.8 removed it (``teach`` raises TypeError). Where ``check_X_y`` takes
    ``ensure_all_finite``, the name ``check_X_y`` inside modAL's modules (not
    scikit-learn's function) is bound to a wrapper that passes the same value under the
    new name.
``data_vstack``
    pandas 2 removed ``DataFrame.append``, which ``modAL.utils.data.data_vstack`` calls
    to grow a DataFrame labeled set. Where stacking two DataFrames with modAL's function
    raises, ``data_vstack`` (in ``modAL.utils.data`` and wherever modAL imported it by
    name) stacks DataFrames with ``pandas.concat``, as ``append`` did, and hands every
    other input to modAL's own function.
``atomic_teach``
    ``ActiveLearner.teach`` appends the new rows to ``X_training`` before it fits, and
    ``ActiveLearner.fit`` replaces them before it fits: a fit that raises leaves a labeled
    set the estimator was not fitted on. Where modAL does that (a probe estimator whose
    ``fit`` raises tells), both put the learner back as it was when they raise, for
    learners whose estimator is a PDCL net or a scikit-learn Pipeline ending in one (the
    Pipeline's other steps are put back too; the net restores itself). Learners of other
    estimators keep modAL's behaviour.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import os
import sys

import numpy as np

from ._pdcl import PDCLMixin

__all__ = ["apply", "revert", "applied"]

#: modAL modules that call ``check_X_y`` or ``data_vstack``, imported before patching so
#: that none binds an original name afterwards. (``modAL.expected_error`` calls
#: ``data_vstack`` too but fails to import on numpy >= 1.24, ``np.float``; imported later,
#: it binds the patched function.)
MODAL_MODULES = ("modAL.utils.data", "modAL.utils", "modAL.models.base",
                 "modAL.models.learners", "modAL.models", "modAL.batch")

#: (patch name, owner, attribute, value replaced, whether the owner had it itself)
_patched: list[tuple[str, object, str, object, bool]] = []


def _set(name, owner, attribute, value):
    had_own = attribute in vars(owner)
    _patched.append((name, owner, attribute, getattr(owner, attribute), had_own))
    setattr(owner, attribute, value)


def _modal_modules():
    for name in MODAL_MODULES:
        importlib.import_module(name)
    return [module for key, module in sorted(sys.modules.items())
            if key.split(".")[0] == "modAL" and module is not None]


# ------------------------------------------------------------------ check_X_y
def _renamed_check_X_y(original):  # noqa: N802 (scikit-learn's name)
    @functools.wraps(original)
    def check_X_y(*args, **kwargs):  # noqa: N802
        if "force_all_finite" in kwargs:
            kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
        return original(*args, **kwargs)

    return check_X_y


def _patch_check_X_y(modules):  # noqa: N802
    from sklearn.utils import check_X_y

    if "ensure_all_finite" not in inspect.signature(check_X_y).parameters:
        return False  # scikit-learn < 1.6: modAL's keyword is the current one
    wrapper = _renamed_check_X_y(check_X_y)
    found = [module for module in modules if getattr(module, "check_X_y", None) is check_X_y]
    for module in found:
        _set("check_X_y", module, "check_X_y", wrapper)
    return bool(found)


# ------------------------------------------------------------------ data_vstack
def _stacking_frames_fails(data_vstack):
    import pandas as pd

    frame = pd.DataFrame({"a": [0.0]})
    try:
        data_vstack((frame, frame))
    except AttributeError:  # pandas >= 2: DataFrame.append is gone
        return True
    return False


def _concat_data_vstack(original):
    @functools.wraps(original)
    def data_vstack(blocks):
        import pandas as pd
        import scipy.sparse as sp

        if isinstance(blocks[0], pd.DataFrame) and not any(sp.issparse(b) for b in blocks):
            return pd.concat([blocks[0], *blocks[1:]])  # DataFrame.append(blocks[1:])
        return original(blocks)

    return data_vstack


def _patch_data_vstack(modules):
    from modAL.utils import data

    original = data.data_vstack
    if not _stacking_frames_fails(original):
        return False
    wrapper = _concat_data_vstack(original)
    for module in modules:
        if getattr(module, "data_vstack", None) is original:
            _set("data_vstack", module, "data_vstack", wrapper)
    return True


# ------------------------------------------------------------------ atomic teach
class _ProbeError(Exception):
    pass


class _FailingFit:
    """An estimator whose fit always raises (the probe of :func:`_teach_keeps_rows`)."""

    def fit(self, X, y, **kwargs):
        raise _ProbeError


def _teach_keeps_rows():
    """Whether modAL's ``teach`` keeps the new rows when the fit raises."""
    from modAL.models import ActiveLearner

    learner = ActiveLearner(estimator=_FailingFit(), query_strategy=lambda *a, **k: 0)
    learner.X_training, learner.y_training = np.zeros((1, 1)), np.zeros(1)
    try:
        learner.teach(np.ones((1, 1)), np.ones(1))
    except _ProbeError:
        return len(learner.X_training) != 1
    except Exception:  # inconclusive: guard the learner all the same
        return True
    return True


def _pdcl_net_of(estimator):
    """The PDCL net of ``estimator`` (itself, or a Pipeline's last step), else None."""
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline) and estimator.steps:
        estimator = estimator.steps[-1][1]
    return estimator if isinstance(estimator, PDCLMixin) else None


def _restorer(learner):
    """A function that puts ``learner`` back as it is now: its attributes (the labeled
    set) and a Pipeline estimator's preprocessing steps (the PDCL net restores itself
    on a failed fit)."""
    from sklearn.pipeline import Pipeline

    saved = dict(learner.__dict__)
    estimator = learner.estimator
    steps = list(estimator.steps) if isinstance(estimator, Pipeline) else []
    states = [(step, copy.deepcopy(vars(step))) for _, step in steps[:-1]
              if hasattr(step, "__dict__")]

    def restore():
        learner.__dict__.clear()
        learner.__dict__.update(saved)
        if steps:
            estimator.steps[:] = steps
        for step, state in states:
            step.__dict__.clear()
            step.__dict__.update(state)

    return restore


def _atomic(method):
    @functools.wraps(method)
    def atomic(self, *args, **kwargs):
        if _pdcl_net_of(getattr(self, "estimator", None)) is None:
            return method(self, *args, **kwargs)
        restore = _restorer(self)
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            restore()
            raise

    return atomic


def _patch_teach():
    from modAL.models import ActiveLearner

    if not _teach_keeps_rows():
        return False
    for name in ("teach", "fit"):
        _set("atomic_teach", ActiveLearner, name, _atomic(getattr(ActiveLearner, name)))
    return True


# ------------------------------------------------------------------ public
def applied() -> tuple[str, ...]:
    """The patches in force, in the order they were applied."""
    return tuple(dict.fromkeys(name for name, *_ in _patched))


def apply() -> tuple[str, ...]:
    """Patch the installed modAL where it needs it; idempotent. Returns :func:`applied`.

    The ``check_X_y`` patch comes first: on scikit-learn >= 1.8 the probe of the
    atomic-teach patch needs a working ``teach``.
    """
    if not _patched:
        try:
            modules = _modal_modules()
        except ImportError:  # modAL absent: nothing to patch
            return ()
        _patch_check_X_y(modules)
        _patch_data_vstack(modules)
        _patch_teach()
    return applied()


def revert() -> None:
    """Undo every patch: modAL is as it was before :func:`apply`."""
    while _patched:
        _, owner, attribute, value, had_own = _patched.pop()
        if had_own:
            setattr(owner, attribute, value)
        else:
            delattr(owner, attribute)


def apply_at_import() -> None:
    """What ``import modal_ally`` runs: :func:`apply`, unless ``MODAL_ALLY_PATCH_MODAL=0``."""
    if os.environ.get("MODAL_ALLY_PATCH_MODAL", "1").strip().lower() not in ("0", "false", "no"):
        apply()
