"""skorch's ``save_params``/``load_params`` for a PDCL net: the dual heads and the
fitted state a query reads, as one more ``f_*`` file (``f_dual_heads``).

skorch saves a net's modules, optimizer, criterion and history; any ``f_<name>`` keyword
saves ``net.<name>_.state_dict()`` by ``torch.save`` and loads it back by
``torch.load(..., weights_only=True)`` and ``load_state_dict``, and skorch's
``Checkpoint``, ``TrainEndCheckpoint`` and ``LoadInitState`` go through the same two
methods. A PDCL net's query reads more than its module: the two dual heads, the
multipliers, the training rows' embeddings and targets, and the target state (classes,
standardization). ``net.dual_heads_`` is a view of all of it with ``state_dict`` and
``load_state_dict``: tensors, numbers and strings only, so the file loads with
``weights_only=True``. The file also holds a fingerprint of the module's weights: a
dual state is only kept with the weights it was fitted on, so a net whose weights
were loaded without it (or with another's) refuses to query instead of querying wrongly.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from skorch.exceptions import NotInitializedError

from ._split import SplitModule
from .dual_head import DualScaling

__all__ = ["PersistenceMixin", "DualHeadsState", "weights_fingerprint"]

FORMAT = "modal_ally.dual_heads"
VERSION = 1
#: The fitted state a query reads besides the heads (each saved when present).
_FITTED = ("lambdas_", "lambdas_mean_", "constraint_losses_", "relaxations_", "epsilon_",
           "train_embeddings_", "train_targets_", "dual_target_mean_",
           "dual_target_scale_", "dual_head_fitted_", "auto_epsilon_reference_loss_",
           "auto_epsilon_fit_time_")
#: What new network weights make stale: dropped when the weights change under it.
QUERY_STATE = _FITTED + ("dual_head_", "pool_dual_head_", "pool_dual_scaling_")
_HOW = ("save it with net.save_params(f_params=..., f_dual_heads=...) and load both "
        "files in one call, load_params(f_params=..., f_dual_heads=...), or fit the net")


def weights_fingerprint(module) -> str:
    """SHA-256 of a module's state dict (names, dtypes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tensor.numel()};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_leaves(values, name):
    if isinstance(values, list):
        for value in values:
            _check_leaves(value, name)
    elif values is not None and not isinstance(values, (bool, int, float, str)):
        raise TypeError(
            f"{name} holds values of type {type(values).__name__}, which f_dual_heads "
            "cannot store (it holds tensors, numbers and strings only, to load with "
            "weights_only=True): use labels that are numbers or strings, or pickle the net")


def _encode(value, name):
    """A fitted value as tensors, numbers and strings (see :func:`_decode`)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    array = np.asarray(value)
    if array.dtype.kind in "biuf":
        try:
            return {"dtype": array.dtype.str, "values": torch.from_numpy(
                np.ascontiguousarray(array).copy())}
        except TypeError:  # a dtype torch lacks: kept as numbers
            pass
    values = array.tolist()
    _check_leaves(values, name)
    return {"dtype": array.dtype.str, "values": values, "shape": list(array.shape)}


def _decode(value):
    if not isinstance(value, dict):
        return value
    values = value["values"]
    if torch.is_tensor(values):
        return values.cpu().numpy().astype(np.dtype(value["dtype"]), copy=False)
    if value["dtype"] == "|O" and len(value["shape"]) == 1:
        out = np.empty(len(values), dtype=object)
        out[:] = values  # a 1-d array of labels, whatever their types
        return out
    return np.asarray(values, dtype=np.dtype(value["dtype"])).reshape(value["shape"])


def has_query_state(net) -> bool:
    return "lambdas_" in net.__dict__


def drop_query_state(net, reason: str) -> None:
    """Forget the dual state (a query then raises, naming ``reason``). Through
    ``__dict__``: skorch's ``__delattr__`` would unregister the heads' prefixes."""
    for name in QUERY_STATE:
        net.__dict__.pop(name, None)
    net.__dict__["_no_dual_state_reason"] = reason


def _head_state(head):
    return {key: value.detach().cpu().clone() for key, value in head.state_dict().items()}


def dual_state_dict(net) -> dict:
    """What ``save_params(f_dual_heads=...)`` writes (see the module's docstring)."""
    training = bool(net.__dict__.get("_in_training")) and "dual_state_" in net.__dict__
    if not training and not has_query_state(net):
        raise NotFittedError(
            f"This {type(net).__name__} has no dual state to save in f_dual_heads (no "
            "multipliers, no dual heads): fit it first")
    shape = net.__dict__.get("feature_shape_")
    state = {"format": FORMAT, "version": VERSION, "estimator": type(net).__name__,
             "task": net._task, "complete": not training,
             "weights": weights_fingerprint(net.module_),
             "feature_shape": None if shape is None else [int(s) for s in shape],
             "target": {name: _encode(net.__dict__[name], name)
                        for name in net._target_state if name in net.__dict__}}
    if training:
        dual = net.dual_state_
        state["training"] = {"lambdas": dual.lambdas.detach().cpu().clone(),
                             "lambda_sum": dual.lambda_sum.detach().cpu().clone(),
                             "latest": dual.latest.detach().cpu().clone(),
                             "epochs": int(dual.epochs)}
        return state
    state["fitted"] = {name: _encode(net.__dict__[name], name)
                       for name in _FITTED if name in net.__dict__}
    if isinstance(net.module_, SplitModule):  # did the fit find the plain module's head?
        state["split_head"] = net.module_._head is not None
    net._settle_dual_head()  # the file holds the trained head
    head = net.__dict__.get("dual_head_")
    pool = net.__dict__.get("pool_dual_head_")
    if head is not None:
        state["heads"] = {
            "embedding_dim": int(np.asarray(net.train_embeddings_).shape[1]),
            "dual_head": _head_state(head),
            "pool_dual_head": None if pool is None or pool is head else _head_state(pool),
            "pool_dual_scaling": dataclasses.asdict(
                net.__dict__.get("pool_dual_scaling_") or net.dual_scaling_)}
    return state


def _check_file(net, state) -> dict:
    name = type(net).__name__
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(
            f"this file is not a dual heads file of a PDCL net: f_dual_heads takes the "
            f"file written by {name}.save_params(f_dual_heads=...)")
    if state.get("version", 0) > VERSION:
        raise ValueError(f"this dual heads file has format version {state['version']}, "
                         f"newer than this modal_ally reads ({VERSION}): upgrade modal_ally")
    if state["task"] != net._task:
        raise ValueError(f"this dual heads file was saved by a {state['estimator']}; "
                         f"load it into one, not a {name}")
    return state


def _build_head(net, prefix, embedding_dim, saved):
    if getattr(net, prefix, None) is None:
        raise ValueError(f"the dual heads file holds a {prefix} but this net has "
                         f"{prefix}=None: build the net with the parameters it was saved with")
    head = net._build_dual_head(embedding_dim, prefix)
    try:
        head.load_state_dict(saved)
    except RuntimeError as exc:
        raise ValueError(
            f"the saved {prefix} does not fit this net's {prefix} (class and "
            f"{prefix}__* parameters): build the net with the parameters it was saved "
            f"with ({exc})") from exc
    return head


def _fitted_values(net, state) -> dict:
    """Every attribute the file sets, built before any is set (a failed load changes
    nothing)."""
    values = {name: _decode(value) for name, value in state["target"].items()}
    classes = getattr(net, "classes", None)
    if classes is not None and "classes_inferred_" in values and not np.array_equal(
            np.asarray(classes), values["classes_inferred_"]):
        raise ValueError(f"the dual heads file was saved with the classes "
                         f"{values['classes_inferred_'].tolist()}, this net has classes="
                         f"{list(classes)}")
    if state["feature_shape"] is not None:
        values["feature_shape_"] = tuple(state["feature_shape"])
    values.update((name, _decode(value)) for name, value in state.get("fitted", {}).items())
    heads = state.get("heads")
    if heads is not None:
        dim = heads["embedding_dim"]
        values["dual_head_"] = _build_head(net, "dual_head", dim, heads["dual_head"])
        values["pool_dual_head_"] = values["dual_head_"] if heads["pool_dual_head"] is None \
            else _build_head(net, "pool_dual_head", dim, heads["pool_dual_head"])
        values["pool_dual_scaling_"] = DualScaling(**heads["pool_dual_scaling"])
    return values


def _resume_training(net, state) -> None:
    """``LoadInitState`` at the start of a fit: the multipliers continue from the file."""
    dual = net.dual_state_
    saved = state.get("training") or {
        "lambdas": torch.as_tensor(_decode(state["fitted"]["lambdas_"]))}
    n_saved, n_rows = int(saved["lambdas"].shape[0]), int(dual.lambdas.shape[0])
    if n_saved != n_rows:
        raise ValueError(
            f"the dual heads file holds the multipliers of {n_saved} rows and this fit "
            f"has {n_rows}: a multiplier belongs to a row, so LoadInitState resumes a "
            "training on the same rows only")
    with torch.no_grad():
        dual.lambdas.copy_(saved["lambdas"])
        if "lambda_sum" in saved:
            dual.lambda_sum.copy_(saved["lambda_sum"])
            dual.latest.copy_(saved["latest"])
            dual.epochs = int(saved["epochs"])


def load_dual_state(net, state) -> None:
    """What ``load_params(f_dual_heads=...)`` does with the file's contents."""
    state = _check_file(net, state)
    if "module_" not in net.__dict__:
        raise NotInitializedError(
            f"Cannot load a dual heads file into an un-initialized {type(net).__name__}: "
            "call initialize() first (the default MLP needs module__input_dim and "
            "module__output_dim for that)")
    if net.__dict__.get("_in_training") and "dual_state_" in net.__dict__:
        _resume_training(net, state)
    else:
        values = _fitted_values(net, state)
        drop_query_state(net, "")
        for name, value in values.items():
            setattr(net, name, value)
        if isinstance(net.module_, SplitModule) and "split_head" in state:
            net.module_.set_head(state["split_head"])
    net.__dict__["_dual_heads_file"] = {"weights": state["weights"],
                                        "complete": bool(state["complete"])}


def reconcile(net, before: str | None, had_state: bool, loaded: dict | None) -> None:
    """After ``load_params``: keep a dual state only with the weights it belongs to."""
    module = net.__dict__.get("module_")
    if module is None:
        return
    now = weights_fingerprint(module)
    if loaded is not None and not loaded["complete"]:
        drop_query_state(net, (
            "the dual heads file was saved during training (a Checkpoint at the end of "
            "an epoch), before the dual heads were fitted on those weights: it resumes a "
            "training (LoadInitState), and a query needs a file saved after fit "
            "(save_params after fit, or TrainEndCheckpoint)."))
    elif loaded is not None and loaded["weights"] != now:
        drop_query_state(net, (
            "the dual heads file (f_dual_heads) was saved with other network weights "
            "than the ones this net holds now: load it together with the f_params file "
            "saved with it."))
    elif loaded is None and before != now and had_state:
        drop_query_state(net, (
            "load_params replaced the network's weights without a dual heads file "
            "(f_dual_heads), so the dual state fitted on the old weights was dropped."))
    elif loaded is None and before != now:
        net.__dict__["_no_dual_state_reason"] = (
            "load_params loaded the network's weights (f_params) without its dual heads "
            "file (f_dual_heads).")


class DualHeadsState:
    """``net.dual_heads_``: the dual heads and fitted state of a PDCL net, saved by
    ``save_params(f_dual_heads=...)`` and loaded by ``load_params(f_dual_heads=...)``."""

    def __init__(self, net):
        self.net = net

    def state_dict(self) -> dict:
        return dual_state_dict(self.net)

    def load_state_dict(self, state_dict) -> None:
        load_dual_state(self.net, state_dict)


class PersistenceMixin:
    """skorch's persistence for PDCLNet and PDCLRegressor (see the module's docstring)."""

    #: The attributes that describe the targets (the classes, the standardization).
    _target_state: tuple = ()

    @property
    def dual_heads_(self) -> DualHeadsState:
        """The dual heads and the fitted state a query reads, as skorch's ``f_dual_heads``
        (``save_params``, ``load_params``, ``Checkpoint``, ``LoadInitState``)."""
        return DualHeadsState(self)

    def initialize(self):
        """skorch's ``initialize``: builds the module, criterion and optimizer (the
        default MLP once its sizes are known: ``module__input_dim`` and
        ``module__output_dim``, or the data at the first fit). A new network drops a
        dual state fitted on the old one."""
        module = self.__dict__.get("module_")
        super().initialize()
        if self.__dict__.get("module_") is not module and has_query_state(self):
            drop_query_state(self, "initialize() built a new network after the dual "
                                   "state was fitted or loaded.")
        return self

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, checkpoint=None, use_safetensors=False, **kwargs):
        """skorch's ``load_params``; ``f_dual_heads`` loads the dual heads and the fitted
        state a query reads (written by ``save_params(f_dual_heads=...)``). A dual
        state is kept only with the network weights it was fitted on."""
        module = self.__dict__.get("module_")
        before = None if module is None else weights_fingerprint(module)
        had_state = has_query_state(self)
        self.__dict__.pop("_dual_heads_file", None)
        try:
            super().load_params(f_params=f_params, f_optimizer=f_optimizer,
                                f_criterion=f_criterion, f_history=f_history,
                                checkpoint=checkpoint, use_safetensors=use_safetensors,
                                **kwargs)
        finally:
            loaded = self.__dict__.pop("_dual_heads_file", None)
            if not self.__dict__.get("_in_training"):
                reconcile(self, before, had_state, loaded)

    def check_is_fitted(self, attributes=None, *args, **kwargs):
        """skorch's; a net with a network but no dual state says why it has none."""
        try:
            return super().check_is_fitted(attributes, *args, **kwargs)
        except NotFittedError:
            if not attributes or "module_" not in self.__dict__:
                raise
            reason = self.__dict__.get("_no_dual_state_reason") or \
                "it was initialized but not fitted."
            raise NotFittedError(
                f"This {type(self).__name__} has a network but no dual state (the "
                f"multipliers and dual heads a query reads): {reason} To query, "
                f"{_HOW}.") from None

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self._in_training = True  # f_dual_heads saves the multipliers of this fit
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.__dict__.pop("_in_training", None)
        self.__dict__.pop("_no_dual_state_reason", None)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_in_training", None)
        return state
