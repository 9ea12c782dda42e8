"""PDCL's skorch hooks: replaceable default callbacks, the dataset, random states."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from skorch.dataset import Dataset

from modal_ally import PDCLNet, RowDataset, ally_query_strategy, ally_scores
from modal_ally.net import __all__ as net_all


def test_default_callbacks_are_named_and_ordered():
    names = [name for name, _ in PDCLNet()._default_callbacks]
    assert names.index("train_loss") < names.index("dual_statistics") \
        < names.index("print_log")
    assert "dual_head" in names


def test_dual_head_callback_can_be_switched_off(digits):
    net = PDCLNet(max_epochs=2, random_state=0, callbacks__dual_head=None)
    net.fit(digits["X_train"], digits["y_train"])
    assert net.lambdas_.shape == (len(digits["X_train"]),)
    assert not hasattr(net, "train_embeddings_")
    np.testing.assert_array_equal(net.predict_dual(digits["X_pool"][:5]), 0)


def test_dual_statistics_callback_can_be_replaced(digits):
    class OnlyMax(Callback):
        def on_epoch_end(self, net, **kwargs):
            net.history.record("lambda_max", float(net.dual_state_.lambdas.max()))

    net = PDCLNet(max_epochs=2, random_state=0, callbacks__dual_statistics=OnlyMax())
    net.fit(digits["X_train"], digits["y_train"])
    assert "lambda_max" in net.history[-1] and "lambda_mean" not in net.history[-1]


def test_lagrangian_is_an_alias_of_train_loss(fitted_net):
    np.testing.assert_allclose(fitted_net.history[:, "lagrangian"],
                               fitted_net.history[:, "train_loss"])


def test_a_row_dataset_subclass_is_honoured_and_others_refused(digits):
    built = []

    class Recording(RowDataset):
        def __init__(self, X, y=None, with_index=False):
            built.append(with_index)
            super().__init__(X, y, with_index=with_index)

    PDCLNet(max_epochs=1, random_state=0, dataset=Recording).fit(
        digits["X_train"], digits["y_train"])
    assert True in built
    with pytest.raises(TypeError, match="RowDataset"):
        PDCLNet(max_epochs=1, dataset=Dataset).fit(digits["X_train"], digits["y_train"])


def test_pdcl_mixin_is_not_public():
    assert "PDCLMixin" not in net_all


def test_torch_generator_accepted_by_ally(fitted_net, digits):
    def picks(seed):
        out = ally_query_strategy(fitted_net, digits["X_pool"], 5,
                                  random_state=torch.Generator().manual_seed(seed))
        return np.asarray(out[0] if isinstance(out, tuple) else out)

    np.testing.assert_array_equal(picks(3), picks(3))


def test_ally_scores_takes_a_learner(fitted_net, digits):
    embeddings, scores = ally_scores(fitted_net, digits["X_pool"])
    assert embeddings.shape == (len(digits["X_pool"]), 256)
    np.testing.assert_allclose(scores, fitted_net.predict_dual(digits["X_pool"]), rtol=1e-6)
    with pytest.raises(TypeError, match="PDCLNet"):
        ally_scores(object(), digits["X_pool"])
