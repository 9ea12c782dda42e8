"""The dual head ``f_omega``: fit and predict as plain functions.

After primal-dual training, a small regression head learns to predict each labeled
row's multiplier from the frozen backbone's embedding (Elenter et al., NeurIPS 2022,
Algorithm 2, line 3). Its inputs are standardized by the head's own buffers and its
targets by ``(lambda - mean) / scale``; :func:`dual_values` maps the output back to
lambda units. The estimator (``PDCLNet``), the query strategies, the generative mode
and the Dask workers all go through these functions.

A multiplier belongs to a (row, label) pair and a pool row has no label. A
*label-conditional* head scores the pair (row, class c), is supervised at each labeled
row's own label, and scores an unlabeled row by the expectation over the net's own
predicted class probabilities, ``lambda_hat(x) = sum_c p_c(x) max(0, h(x, c))``:
``conditional="loss"`` (the pool head's) has one output that reads the class's
cross-entropy ``-log p_c(x)`` beside the embedding (``ConditionalDualHead``);
``conditional="class"`` has one output per class (``DualHead(output_dim=n_classes)``).
The head's inputs are the embedding, or the embedding and the class probabilities
(``inputs="embedding+proba"``). It is trained by mean squared error (the paper's) or by
a pairwise ranking loss (Yoo and Kweon, CVPR 2019, "Learning Loss"), on every row or
with held-out rows for early stopping.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ._inference import map_chunks
from .modules import ConditionalDualHead, DualHead

__all__ = ["DualScaling", "fit_dual_head", "dual_values", "predict_dual", "expected_dual",
           "head_inputs", "needs_probabilities", "LOSSES", "INPUTS", "CONDITIONAL",
           "MIN_CLASS_PROBABILITY"]

#: The dual head's training losses: ``"mse"`` (the paper's) and ``"rank"`` (pairwise).
LOSSES = ("mse", "rank")
#: What the dual head reads: the embedding, or the embedding and the class probabilities.
INPUTS = ("embedding", "embedding+proba")
#: How the head conditions on the label: not at all, one output per class, or through the
#: class's loss.
CONDITIONAL = ("none", "class", "loss")
#: The margin of the pairwise ranking loss, in units of the standardized targets.
RANK_MARGIN = 0.1
#: Rows per block of the pairwise ranking loss (a block x block matrix of pairs).
_RANK_BLOCK = 1024
#: A pool row's label-conditional score leaves out the classes the net gives less
#: probability than this (never the row's most probable class): each such class adds
#: ``p_c max(0, lambda_hat(x, c))`` to the expectation, and with the head's slot feature
#: ``-log p_c`` that product vanishes with ``p_c``. Measured by
#: ``benchmarks/research/pool_head_cost.py``: the scores' largest relative change and how many
#: (row, class) pairs are left.
MIN_CLASS_PROBABILITY = 1e-6


@dataclass(frozen=True)
class DualScaling:
    """How the head's output maps to lambda units (``output * scale + mean``) and how
    the head is read: ``conditional`` (one of :data:`CONDITIONAL`; a label-conditional
    pool score is the expectation over the predicted class probabilities) and
    ``inputs``."""

    mean: float
    scale: float
    fitted: bool
    conditional: str = "none"
    inputs: str = "embedding"


def head_inputs(embeddings: torch.Tensor, probs, inputs: str) -> torch.Tensor:
    """What the head reads: the embeddings, with the class probabilities appended for
    ``inputs="embedding+proba"`` (a regressor has none: the embeddings alone)."""
    if inputs == "embedding" or probs is None:
        return embeddings
    return torch.cat([embeddings, probs.to(embeddings.dtype)], dim=1)


def _rank_loss(out, target):
    """Pairwise hinge: every pair whose targets differ must be ordered by ``RANK_MARGIN``."""
    total, count = out.new_zeros(()), 0
    for start in range(0, out.shape[0], _RANK_BLOCK):
        o, t = out[start:start + _RANK_BLOCK], target[start:start + _RANK_BLOCK]
        sign = torch.sign(t[:, None] - t[None, :])
        hinge = torch.relu(RANK_MARGIN - sign * (o[:, None] - o[None, :]))
        mask = sign > 0
        total = total + hinge[mask].sum()
        count += int(mask.sum())
    return total / max(count, 1)


def _slot(out, labels):
    """The observed label's output of a label-conditional head (all of a plain one)."""
    out = out.reshape(out.shape[0], -1)
    if labels is None or out.shape[1] == 1:
        return out[:, 0]
    return out.gather(1, labels.reshape(-1, 1))[:, 0]


def _rows_output(head, x, conditional, slots, own, rows):
    """The head's output for training rows (each at its own label)."""
    if conditional == "loss":
        return head(x[rows], own[rows]).reshape(-1)
    return _slot(head(x[rows]), None if slots is None else slots[rows])


def _loss(name, out, target):
    return nn.functional.mse_loss(out, target) if name == "mse" else _rank_loss(out, target)


def fit_dual_head(head: nn.Module, embeddings: torch.Tensor, targets: torch.Tensor, *,
                  epochs: int, lr: float, batch_size: int, seed: int = 0,
                  device=None, labels=None, probs=None, loss: str = "mse",
                  validation: float = 0.0, inputs: str = "embedding",
                  conditional: str = "none") -> DualScaling:
    """Regress the multipliers ``targets`` on ``embeddings``; train ``head`` in place.

    Adam on shuffled minibatches of ``batch_size`` rows (the whole set at once when it
    fits); inputs and targets are standardized. When every multiplier is 0 there is
    nothing to learn: the head is left untrained, a warning says so, and the returned
    scaling has ``fitted=False``.

    Parameters
    ----------
    labels : tensor of int, shape (n,), or None
        The rows' labels (a label-conditional head needs them; None: a plain head).
    probs : tensor (n, n_classes) or None
        The rows' predicted class probabilities (``inputs="embedding+proba"`` and
        ``conditional="loss"`` need them).
    conditional : {"none", "class", "loss"}
        ``"class"``: ``head`` has one output per class, each row is supervised in its
        label's; ``"loss"``: ``head(embeddings, q)`` (``ConditionalDualHead``) is
        supervised at ``q = p_y(x)`` of the row's label ``y``. Ignored without labels
        (a regressor): the plain head.
    loss : {"mse", "rank"}
        Mean squared error (the paper's), or a pairwise ranking hinge; with ``"rank"``
        the output is mapped to lambda units by a least-squares line on the training
        rows (the ranking is the head's).
    validation : float in [0, 0.5)
        Fraction of rows held out (seeded): the head of the epoch with the lowest
        held-out loss is kept. 0: every row trains the head for every epoch.
    """
    targets = targets.float()
    mean = float(targets.mean())
    std = float(targets.std()) if targets.numel() > 1 else 0.0
    if labels is None:
        conditional = "none"
    if probs is None:  # a regressor: nothing to append
        inputs = "embedding"
    scaling = DualScaling(mean=mean, scale=std if std > 0 else 1.0,
                          fitted=float(targets.max()) > 0, conditional=conditional,
                          inputs=inputs)
    if not scaling.fitted:
        warnings.warn(
            "every dual variable is 0: epsilon is above every per-sample loss, so no "
            "training row is informative for the constraints; predict_dual returns 0 "
            "and the ALLY strategies fall back to diversity alone (lower epsilon to "
            "get an informativeness signal)", UserWarning, stacklevel=5)
        return scaling
    x = head_inputs(embeddings, probs, inputs).to(device)
    scaled = ((targets - scaling.mean) / scaling.scale).to(device)
    slots = None if labels is None else torch.as_tensor(labels).long().to(device)
    own = None
    if conditional == "loss":
        own = probs.to(device).gather(1, slots.reshape(-1, 1))[:, 0].float()
    n = x.shape[0]
    generator = torch.Generator().manual_seed(seed)
    train = torch.arange(n)
    held = None
    if validation > 0 and n >= 10:
        order = torch.randperm(n, generator=generator)
        n_held = max(2, int(round(validation * n)))
        held, train = order[:n_held].to(device), order[n_held:]
    head.set_input_scaling(x[train.to(device)])
    if own is not None and hasattr(head, "set_slot_scaling"):
        head.set_slot_scaling(own[train.to(device)])
    # the package's own heads read their inputs through ``standardize``: done once here,
    # not at every step (a subclass may standardize in a forward of its own: left alone)
    context = contextlib.nullcontext()
    if type(head) in (DualHead, ConditionalDualHead):
        with torch.no_grad():
            x = head.standardize(x)
        context = head.standardized_inputs()

    def output(rows):
        return _rows_output(head, x, conditional, slots, own, rows)

    with context:
        _train(head, output, scaled, train, held, epochs=epochs, lr=lr,
               batch_size=batch_size, loss=loss, generator=generator, device=device)
        if loss == "rank":
            with torch.no_grad():
                scaling = _calibrated(output(slice(None)), scaled, scaling)
    return scaling


def _train(head, output, scaled, train, held, *, epochs, lr, batch_size, loss, generator,
           device):
    """Adam on shuffled minibatches of the ``train`` rows; with ``held`` rows, the head
    of the epoch with the lowest held-out loss is kept."""
    # foreach: the same arithmetic as the loop over parameters (equal bit for bit on
    # CPU), one call for the head's eight tensors
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, foreach=True)
    n_train = train.shape[0]
    batch = min(int(batch_size), n_train)
    # every row in order, every epoch: the tensors themselves, no copy of the rows
    whole = slice(None) if batch == n_train and held is None else None
    best, best_state = float("inf"), None
    head.train(True)
    for _ in range(int(epochs)):
        order = train[torch.randperm(n_train, generator=generator)] if batch < n_train \
            else train
        order = order.to(device)
        for start in range(0, n_train, batch):
            rows = order[start:start + batch] if whole is None else whole
            value = _loss(loss, output(rows), scaled[rows])
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
        if held is not None:
            with torch.no_grad():
                head.train(False)
                score = float(_loss(loss, output(held), scaled[held]))
                head.train(True)
            if score < best:
                best, best_state = score, copy.deepcopy(head.state_dict())
    if best_state is not None:
        head.load_state_dict(best_state)
    head.train(False)


def _calibrated(out, scaled, scaling):
    """Lambda units for a ranking head: the least-squares line from its output to the
    standardized targets (a positive slope: the order stays the head's)."""
    out = out.double()
    t = scaled.double()
    centred = out - out.mean()
    var = float((centred * centred).mean())
    slope = float((centred * (t - t.mean())).mean()) / var if var > 0 else 1.0
    slope = max(slope, 1e-6)
    intercept = float(t.mean()) - slope * float(out.mean())
    return DualScaling(mean=scaling.mean + scaling.scale * intercept,
                       scale=scaling.scale * slope, fitted=True,
                       conditional=scaling.conditional, inputs=scaling.inputs)


def dual_values(head: nn.Module, embeddings: torch.Tensor, scaling: DualScaling,
                probs=None):
    """The head's prediction in lambda units (differentiable).

    A plain head: its output, before the clip at 0. A label-conditional head: the
    expectation of its clipped per-class outputs under ``probs`` (the net's predicted
    class probabilities, needed then).
    """
    if needs_probabilities(scaling) and probs is None:
        raise ValueError(f"this dual head (conditional={scaling.conditional!r}, "
                         f"inputs={scaling.inputs!r}) needs the class probabilities")
    x = head_inputs(embeddings, probs, scaling.inputs)
    out = head(x, probs) if scaling.conditional == "loss" else head(x)
    out = out.reshape(out.shape[0], -1) * scaling.scale + scaling.mean
    if scaling.conditional != "none" and out.shape[1] > 1:
        return (probs.to(out.dtype) * out.clamp_min(0)).sum(dim=1)
    return out[:, 0]


def needs_probabilities(scaling: DualScaling) -> bool:
    """Whether reading the head takes the net's class probabilities."""
    return scaling.conditional != "none" or scaling.inputs != "embedding"


def expected_dual(head: nn.Module, embeddings: torch.Tensor, scaling: DualScaling,
                  probs: torch.Tensor, *,
                  min_probability: float = MIN_CLASS_PROBABILITY) -> torch.Tensor:
    """A label-conditional head's pool score ``sum_c p_c max(0, lambda_hat(x, c))``
    over the classes with ``p_c >= min_probability`` and each row's most probable
    class: the head is evaluated on those (row, class) pairs only, the row's term
    once (``ConditionalDualHead.pair_outputs``). ``min_probability=0``: every class,
    the same sum as :func:`dual_values` (up to the order of the additions)."""
    x = head_inputs(embeddings, probs, scaling.inputs)
    probs = probs.to(x.dtype)
    keep = probs >= min_probability
    keep[torch.arange(probs.shape[0], device=probs.device), probs.argmax(dim=1)] = True
    rows, classes = keep.nonzero(as_tuple=True)
    q = probs[rows, classes]
    out = head.pair_outputs(x, rows, q) * scaling.scale + scaling.mean
    return torch.zeros(probs.shape[0], dtype=out.dtype, device=out.device).index_add_(
        0, rows, q.to(out.dtype) * out.clamp_min(0))


@torch.no_grad()
def predict_dual(head: nn.Module, embeddings, scaling: DualScaling, *, chunk_size: int,
                 device, classifier=None, probs=None,
                 min_probability: float = MIN_CLASS_PROBABILITY) -> torch.Tensor:
    """Predicted multipliers (>= 0, lambda units) of embeddings, in chunks.

    ``classifier`` maps embeddings to class probabilities (the net's own head and a
    softmax; None for a regressor); ``probs``, the embeddings' class probabilities
    already computed, is read instead where given. A head read through the class's loss
    (``conditional="loss"``) is evaluated on the classes of probability at least
    ``min_probability`` only (:func:`expected_dual`). Returns a CPU float tensor of
    shape (n_samples,); zeros when the head was not fitted (every training multiplier
    was 0).
    """
    if not scaling.fitted:
        return torch.zeros(embeddings.shape[0])
    head.train(False)
    wants = needs_probabilities(scaling) and (classifier is not None or probs is not None)

    def block_values(block, block_probs=None):
        if wants and block_probs is None:
            block_probs = classifier(block)
        if block_probs is not None and block_probs.shape[1] > 1 \
                and scaling.conditional == "loss" and hasattr(head, "pair_outputs"):
            return expected_dual(head, block, scaling, block_probs,
                                 min_probability=min_probability)
        return dual_values(head, block, scaling, block_probs if wants else None)

    if probs is None:
        out = map_chunks(block_values, embeddings, chunk_size=chunk_size, device=device,
                         name=None)
    else:
        out = torch.cat([
            block_values(torch.as_tensor(embeddings[start:start + chunk_size]).to(device),
                         torch.as_tensor(probs[start:start + chunk_size]).to(device)
                         ).cpu()
            for start in range(0, embeddings.shape[0], chunk_size)]) \
            if embeddings.shape[0] else torch.empty(0)
    return out.float().clamp_min(0)
