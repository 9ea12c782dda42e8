"""No half-fitted estimator: :func:`restore_on_error` puts a skorch net back as it
was before a ``fit`` that raised (a diverged training, a bad option found late)."""

from __future__ import annotations

import contextlib
import copy

import torch

__all__ = ["restore_on_error"]


def _module_states(net) -> dict:
    """Copies of the parameters of the modules a fit trains in place: those the user
    passed as instances (skorch re-uses them; a module class is built anew)."""
    states = {}
    for param, name in (("module", "module_"), ("dual_head", "dual_head_"),
                        ("pool_dual_head", "pool_dual_head_")):
        module = net.__dict__.get(name)
        if isinstance(getattr(net, param, None), torch.nn.Module) \
                and isinstance(module, torch.nn.Module):
            states[name] = (module, copy.deepcopy(module.state_dict()))
    return states


@contextlib.contextmanager
def restore_on_error(net):
    """On an exception, put ``net`` back as it was on entry, then re-raise.

    skorch's ``initialize`` replaces most fitted attributes with new objects, so the
    previous ones are kept by reference; the history is cleared in place and modules
    passed as instances are re-used and trained in place, so those are copied first.
    """
    saved = dict(net.__dict__)
    states = _module_states(net)
    history = net.__dict__.get("history_")
    rows = list(history) if history is not None else None  # skorch clears it in place
    try:
        yield
    except BaseException:
        net.__dict__.clear()
        net.__dict__.update(saved)
        for module, state in states.values():
            module.load_state_dict(state)
        if history is not None:
            history[:] = rows
        raise
