"""Any torch module seen as ``backbone`` + ``head``, without restructuring it.

ALLY regresses the dual variables on an embedding of each sample (Elenter et al.,
NeurIPS 2022, section 4), BADGE and Core-Set work on the same embedding. Modules built
for modal_ally expose it as ``backbone(x)`` with ``forward(x) = head(backbone(x))``.
A user's own module (modAL's PyTorch example, say) is used as it is: the embedding is
the input of its last ``nn.Linear`` (in registration order), or the output of the
submodule named by ``embedding_layer``, captured by a hook during the module's own
``forward``. The user's module, its parameter names and its ``state_dict`` are kept
unchanged, so checkpoints move freely between a plain skorch net and a PDCL net.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SplitModule", "as_backbone_head", "check_embedding_layer"]


class _EmbeddingCapturedError(Exception):
    """Raised by the capture hook to stop ``forward`` once the embedding is known."""


def check_embedding_layer(embedding_layer):
    """``embedding_layer`` is None or the (dotted) name of a submodule."""
    if embedding_layer is not None and (not isinstance(embedding_layer, str)
                                        or not embedding_layer):
        raise TypeError("embedding_layer must be None or the name of a submodule "
                        f"(as in module.named_modules()), got {embedding_layer!r}")
    return embedding_layer


def _find_layer(module: nn.Module, embedding_layer):
    """The submodule whose input (last ``nn.Linear``) or output (named) is the embedding."""
    named = dict(module.named_modules())
    if embedding_layer is not None:
        if embedding_layer not in named or embedding_layer == "":
            choices = [name for name in named if name][:12]
            raise ValueError(
                f"embedding_layer={embedding_layer!r} is not a submodule of "
                f"{type(module).__name__}; its submodules are {choices}")
        return embedding_layer, named[embedding_layer], "output"
    linears = [name for name, sub in named.items() if isinstance(sub, nn.Linear)]
    if not linears:
        raise TypeError(
            f"the module {type(module).__name__} has no nn.Linear layer to split at: "
            "name the layer whose output is the embedding with embedding_layer='name', "
            "or give the module `backbone` and `head` submodules "
            "(forward = head(backbone(x)))")
    return linears[-1], named[linears[-1]], "input"


class _Backbone:
    """Callable ``backbone(x)``: runs the module's forward up to the embedding."""

    def __init__(self, owner: SplitModule):
        self._owner = owner

    def __call__(self, X):  # noqa: N803 - skorch's name for the input
        return self._owner.embed(X)


class SplitModule(nn.Module):
    """A plain torch module with a ``backbone`` (its embedding) and, when it can be
    identified, a ``head``.

    Parameters
    ----------
    module : torch.nn.Module
        The user's module, kept as ``self.module``; ``forward`` is its forward.
    embedding_layer : str or None, default None
        Name of the submodule (``module.named_modules()``) whose output is the
        embedding. None uses the input of the last ``nn.Linear``.

    Notes
    -----
    ``state_dict`` and ``load_state_dict`` are the user's module's own (same keys),
    so a checkpoint saved by a plain skorch net loads here and the other way round.
    ``head`` exists once :meth:`check_split` has found that the module's output is the
    last ``nn.Linear`` applied to the embedding (what BADGE needs); ALLY and Core-Set
    only need ``backbone``.
    """

    def __init__(self, module: nn.Module, embedding_layer=None):
        super().__init__()
        self.module = module
        self.embedding_layer = check_embedding_layer(embedding_layer)
        self.layer_name, layer, self.capture = _find_layer(module, embedding_layer)
        # plain attributes, not submodules: the parameters belong to self.module
        object.__setattr__(self, "_layer", layer)
        object.__setattr__(self, "_head", None)
        object.__setattr__(self, "backbone", _Backbone(self))

    def forward(self, X):  # noqa: N803
        return self.module(X)

    def __getattr__(self, name):
        # the user's module's own attributes (net.module_.features...) stay reachable
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("_modules", {}).get("module")
            if inner is None or name in ("head", "backbone"):
                raise
            return getattr(inner, name)

    @property
    def embedding_dim(self):
        return getattr(self.module, "embedding_dim", None)

    @property
    def head(self):
        if self._head is None:
            raise AttributeError(
                f"{type(self.module).__name__} has no identified head: its output is not "
                f"the last nn.Linear ({self.layer_name!r}) applied to the embedding")
        return self._head

    def embed(self, X):  # noqa: N803
        """The embedding of ``X``, shape (n_samples, embedding_dim)."""
        captured = []

        def keep(value):
            captured.append(value)
            raise _EmbeddingCapturedError

        if self.capture == "input":
            handle = self._layer.register_forward_pre_hook(lambda mod, args: keep(args[0]))
        else:
            handle = self._layer.register_forward_hook(lambda mod, args, out: keep(out))
        try:
            self.module(X)
        except _EmbeddingCapturedError:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(
                f"the layer {self.layer_name!r} of {type(self.module).__name__} was not "
                "called by its forward: name the embedding with embedding_layer='name'")
        value = captured[0]
        if not torch.is_tensor(value):
            raise TypeError(f"the layer {self.layer_name!r} does not produce a tensor "
                            f"(got {type(value).__name__}): choose another embedding_layer")
        return value.reshape(value.shape[0], -1)

    @torch.no_grad()
    def check_split(self, X_sample) -> bool:
        """Check the split on a few real rows; expose ``head`` when it is the end of
        ``forward`` (``module(x) == last_linear(embedding(x))``).

        Returns whether the head was identified. The module's train/eval mode is kept.
        """
        was_training = self.training
        self.train(False)
        try:
            embeddings = self.embed(X_sample)
            out = self.module(X_sample)
        finally:
            self.train(was_training)
        head = self.head_layer()
        matches = False
        if head is not None and torch.is_tensor(out) \
                and embeddings.shape[1] == head.in_features:
            expected = head(embeddings)
            matches = expected.shape == out.reshape(out.shape[0], -1).shape and bool(
                torch.allclose(expected, out.reshape(out.shape[0], -1), rtol=1e-4,
                               atol=1e-5))
        object.__setattr__(self, "_head", head if matches else None)
        return matches

    def head_layer(self):
        """The layer :meth:`check_split` tests as the head: the embedding layer when it
        is an ``nn.Linear``, else the last ``nn.Linear``."""
        return self._layer if isinstance(self._layer, nn.Linear) else _last_linear(self)

    def set_head(self, found: bool) -> None:
        """Expose ``head`` (or not) as :meth:`check_split` found it at the fit: a net
        loaded by ``load_params`` has seen no rows to check."""
        object.__setattr__(self, "_head", self.head_layer() if found else None)

    # the user's module's checkpoint format, not the wrapper's
    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, *args, **kwargs):
        return self.module.load_state_dict(state_dict, *args, **kwargs)


def _last_linear(split: SplitModule):
    linears = [sub for sub in split.module.modules() if isinstance(sub, nn.Linear)]
    return linears[-1] if linears else None


def as_backbone_head(module: nn.Module, embedding_layer=None) -> nn.Module:
    """``module`` itself when it has a ``backbone``, else a :class:`SplitModule` of it."""
    if isinstance(module, SplitModule) or (embedding_layer is None
                                           and hasattr(module, "backbone")):
        return module
    return SplitModule(module, embedding_layer)
