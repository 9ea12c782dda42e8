"""The dual heads: the paper's (method="paper") and the pool's label-conditional head."""

import pickle

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from modal_ally import PDCLNet
from modal_ally.dual_head import (
    MIN_CLASS_PROBABILITY,
    DualScaling,
    dual_values,
    fit_dual_head,
    predict_dual,
)
from modal_ally.modules import ConditionalDualHead, DualHead
from modal_ally.strategies import ally_query_strategy
from modal_ally.strategies.ally import priority_order


def _probs(net, embeddings):
    return net._class_probabilities(torch.as_tensor(embeddings))


def test_both_heads_are_fitted_and_the_paper_head_is_the_papers(fitted_net):
    assert type(fitted_net.dual_head_) is DualHead
    widths = [m.out_features for m in fitted_net.dual_head_.modules()
              if isinstance(m, torch.nn.Linear)]
    assert widths == [64, 32, 16, 1]
    assert isinstance(fitted_net.pool_dual_head_, ConditionalDualHead)
    assert fitted_net.pool_dual_scaling_.conditional == "loss"
    assert fitted_net.dual_scaling_.conditional == "none"


def test_pool_score_is_the_expectation_over_predicted_classes(fitted_net, digits):
    E = torch.as_tensor(fitted_net.embed(digits["X_pool"][:50]))
    p = _probs(fitted_net, E)
    head, scaling = fitted_net.pool_dual_head_, fitted_net.pool_dual_scaling_
    with torch.no_grad():
        per_class = head(E, p) * scaling.scale + scaling.mean  # (n, n_classes)
    every_class = (p * per_class.clamp_min(0)).sum(dim=1)
    exact = predict_dual(head, E, scaling, chunk_size=16, device="cpu", probs=p,
                         min_probability=0.0)
    np.testing.assert_allclose(exact.numpy(), every_class.numpy(), rtol=1e-5, atol=1e-6)
    # the default leaves out the classes below MIN_CLASS_PROBABILITY (never the top one)
    kept = (p >= MIN_CLASS_PROBABILITY) | (p == p.max(dim=1, keepdim=True).values)
    assert not bool(kept.all())  # some pairs are left out here
    expected = (p * per_class.clamp_min(0) * kept).sum(dim=1)
    got = fitted_net.predict_dual_from_embeddings(E)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert float(((got - every_class).abs() / every_class).max()) < 0.1
    assert np.allclose(fitted_net.predict_dual(digits["X_pool"][:50], head="pool"),
                       got.numpy(), atol=1e-6)
    paper = fitted_net.predict_dual_from_embeddings(E, head="paper").numpy()
    assert np.allclose(fitted_net.predict_dual(digits["X_pool"][:50]), paper, atol=1e-6)


def test_paper_head_reads_as_before(fitted_net, digits):
    E = torch.as_tensor(fitted_net.embed(digits["X_pool"][:50]))
    with torch.no_grad():
        raw = fitted_net.dual_head_(E) * fitted_net.dual_target_scale_ \
            + fitted_net.dual_target_mean_
    got = fitted_net.predict_dual_from_embeddings(E, head="paper")
    np.testing.assert_allclose(got.numpy(), raw.clamp_min(0).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="head"):
        fitted_net.predict_dual_from_embeddings(E, head="nope")


def test_the_paper_rule_ranks_by_the_paper_head(fitted_net, digits, monkeypatch):
    """method="paper" reads head="paper" only: the pool head may be anything."""
    X_pool = digits["X_pool"]
    before = ally_query_strategy(fitted_net, X_pool, 20, method="paper", random_state=0)
    original = type(fitted_net).predict_dual_from_embeddings

    def pool_is_noise(self, embeddings, *, head="pool", probs=None):
        if head == "pool":
            return torch.rand(embeddings.shape[0])
        return original(self, embeddings, head=head, probs=probs)

    monkeypatch.setattr(type(fitted_net), "predict_dual_from_embeddings", pool_is_noise)
    after = ally_query_strategy(fitted_net, X_pool, 20, method="paper", random_state=0)
    np.testing.assert_array_equal(np.asarray(before).ravel()[:20],
                                  np.asarray(after).ravel()[:20])


def test_pool_head_ranks_the_pools_loss_better_than_the_papers(fitted_net, digits):
    """The reason for the pool head (docs/label-efficiency.md, the dual head section)."""
    X, y = digits["X_pool"], digits["y_pool"]
    loss = fitted_net.per_sample_loss(X, y)
    E = fitted_net.embed(X)
    pool = spearmanr(fitted_net.predict_dual_from_embeddings(E).numpy(), loss)[0]
    paper = spearmanr(fitted_net.predict_dual_from_embeddings(E, head="paper").numpy(),
                      loss)[0]
    assert pool > paper + 0.1 and pool > 0.8


def test_conditional_head_is_supervised_at_the_observed_label():
    """Targets that depend on the label only: each row's own slot learns its target."""
    g = torch.Generator().manual_seed(0)
    n, d, c = 300, 8, 3
    E = torch.randn(n, d, generator=g)
    labels = torch.randint(0, c, (n,), generator=g)
    probs = torch.softmax(torch.randn(n, c, generator=g), dim=1)
    targets = labels.float() + 0.5
    torch.manual_seed(0)
    head = DualHead(d, output_dim=c)
    scaling = fit_dual_head(head, E, targets, epochs=300, lr=1e-2, batch_size=4096,
                            labels=labels, probs=probs, conditional="class")
    with torch.no_grad():
        out = head(E) * scaling.scale + scaling.mean
    own = out.gather(1, labels[:, None])[:, 0]
    assert float((own - targets).abs().mean()) < 0.1
    onehot = torch.nn.functional.one_hot(labels, c).float()
    read = dual_values(head, E, scaling, onehot)
    np.testing.assert_allclose(read.detach().numpy(), own.clamp_min(0).numpy(), atol=1e-5)


def test_loss_conditional_head_learns_a_loss_dependence():
    """Multipliers that grow with the row's loss: the head's pool score grows with the
    expected loss (the entropy) at a fixed embedding."""
    g = torch.Generator().manual_seed(1)
    n, d, c = 400, 4, 5
    E = torch.randn(n, d, generator=g)
    logits = 3 * torch.randn(n, c, generator=g)
    probs = torch.softmax(logits, dim=1)
    labels = torch.multinomial(probs, 1, generator=g)[:, 0]
    own_loss = -torch.log(probs.gather(1, labels[:, None])[:, 0])
    torch.manual_seed(0)
    head = ConditionalDualHead(d)
    scaling = fit_dual_head(head, E, own_loss, epochs=300, lr=1e-2, batch_size=4096,
                            labels=labels, probs=probs, conditional="loss")
    pool = predict_dual(head, E, scaling, chunk_size=n, device="cpu",
                        classifier=lambda e: probs)
    entropy = -(probs * torch.log(probs)).sum(dim=1)
    assert spearmanr(pool.numpy(), entropy.numpy())[0] > 0.8


def test_reading_a_conditional_head_without_probabilities_says_so():
    head = DualHead(4, output_dim=3)
    scaling = DualScaling(0.0, 1.0, True, conditional="class")
    with pytest.raises(ValueError, match="class probabilities"):
        dual_values(head, torch.zeros(2, 4), scaling)


def test_rank_loss_and_validation_give_lambda_units():
    g = torch.Generator().manual_seed(2)
    E = torch.randn(200, 6, generator=g)
    targets = (E[:, 0] + 2).clamp_min(0)
    torch.manual_seed(0)
    head = DualHead(6)
    scaling = fit_dual_head(head, E, targets, epochs=200, lr=1e-2, batch_size=4096,
                            loss="rank", validation=0.2)
    pred = predict_dual(head, E, scaling, chunk_size=64, device="cpu")
    assert spearmanr(pred.numpy(), targets.numpy())[0] > 0.9
    assert abs(float(pred.mean()) - float(targets.mean())) < 0.5  # calibrated units


def test_pool_dual_head_none_reads_the_papers_for_the_pool(digits):
    net = PDCLNet(max_epochs=5, random_state=0, pool_dual_head=None)
    net.fit(digits["X_train"], digits["y_train"])
    assert net.pool_dual_head_ is net.dual_head_
    E = net.embed(digits["X_pool"][:30])
    np.testing.assert_array_equal(net.predict_dual_from_embeddings(E).numpy(),
                                  net.predict_dual_from_embeddings(E, head="paper").numpy())


def test_pool_dual_head_params_are_routed_and_checked(digits):
    net = PDCLNet(max_epochs=2, random_state=0, pool_dual_head__hidden_units=(8,))
    net.fit(digits["X_train"][:50], digits["y_train"][:50])
    assert net.pool_dual_head_.embedding_layer.out_features == 8
    assert not any(n.startswith("pool_dual_head") for n, _ in net.get_all_learnable_params())
    with pytest.raises(TypeError, match="pool_dual_head"):
        PDCLNet(pool_dual_head="conditional").fit(digits["X_train"][:50],
                                                  digits["y_train"][:50])


def test_regressor_scores_the_pool_with_the_papers_head(fitted_regressor, diabetes):
    assert fitted_regressor.pool_dual_head_ is fitted_regressor.dual_head_
    _, _, X_new, _ = diabetes
    E = fitted_regressor.embed(X_new)
    np.testing.assert_array_equal(
        fitted_regressor.predict_dual_from_embeddings(E).numpy(),
        fitted_regressor.predict_dual_from_embeddings(E, head="paper").numpy())


def test_pickled_net_scores_the_same(fitted_net, digits):
    clone = pickle.loads(pickle.dumps(fitted_net))
    X = digits["X_pool"][:40]
    for head in ("pool", "paper"):
        np.testing.assert_allclose(clone.predict_dual(X, head=head),
                                   fitted_net.predict_dual(X, head=head), atol=1e-6)


def test_block_net_computes_the_nets_lambda_hat(fitted_net, fitted_regressor, digits,
                                                diabetes):
    """What a Dask worker computes is what the in-memory net computes, for both heads."""
    from modal_ally.distributed._pool import BlockNet

    for net, X in ((fitted_net, digits["X_pool"][:64]), (fitted_regressor, diabetes[2][:64])):
        block_net = pickle.loads(pickle.dumps(BlockNet.from_net(net)))
        E = block_net.embed(np.asarray(X))
        for head in ("pool", "paper"):
            np.testing.assert_allclose(
                block_net.dual(E, head=head),
                net.predict_dual_from_embeddings(E, head=head).numpy(), atol=1e-5)


def test_paper_rule_order_uses_paper_scores(fitted_net, digits):
    """The equitable order of the paper's rule is by the paper head's scores."""
    E = fitted_net.embed(digits["X_pool"])
    scores = fitted_net.predict_dual_from_embeddings(E, head="paper").numpy()
    labels = np.zeros(len(scores), dtype=int)
    top = priority_order(scores, labels, 5)[:5]
    picks = ally_query_strategy(fitted_net, digits["X_pool"], 5, method="paper",
                                n_clusters=1, random_state=0)
    picks = picks[0] if isinstance(picks, tuple) else picks
    np.testing.assert_array_equal(np.sort(np.asarray(picks)), np.sort(top))


@pytest.mark.parametrize("form", ["mlp", "additive", "loss", "monotone"])
def test_conditional_head_forms_score_rows_and_classes(form):
    head = ConditionalDualHead(5, form=form)
    E, q = torch.randn(7, 5), torch.softmax(torch.randn(7, 3), dim=1)
    assert head(E, q[:, 0]).shape == (7,)
    per_class = head(E, q)
    assert per_class.shape == (7, 3)
    np.testing.assert_allclose(per_class[:, 1].detach().numpy(),
                               head(E, q[:, 1]).detach().numpy(), rtol=1e-5, atol=1e-6)
    rows, classes = torch.tensor([0, 0, 3, 6, 6, 6]), torch.tensor([2, 0, 1, 0, 1, 2])
    np.testing.assert_allclose(head.pair_outputs(E, rows, q[rows, classes]).detach().numpy(),
                               per_class[rows, classes].detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match="form"):
        ConditionalDualHead(5, form="tree")


def test_monotone_form_never_decreases_with_the_class_loss():
    """``form="monotone"``: non-negative weights on the loss path, so a class the net
    finds less likely (a larger loss) never scores lower; the embedding is not read."""
    torch.manual_seed(0)
    head = ConditionalDualHead(5, form="monotone")
    for layer in [head.slot_layer, *[m for m in head.rest if isinstance(m, torch.nn.Linear)]]:
        torch.nn.init.normal_(layer.weight, std=2.0)  # weights of either sign
    q = torch.linspace(0.999, 1e-6, 400)
    out = head(torch.randn(400, 5), q).detach()
    assert bool((out[1:] >= out[:-1] - 1e-6).all())
    assert torch.equal(out, head(torch.zeros(400, 5), q).detach())
