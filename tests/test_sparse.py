"""scipy.sparse inputs (CSR, CSC) wherever a numpy array works, never densified.

The sparse rows reach the network's first ``nn.Linear`` as a torch sparse CSR tensor, so
the products are summed in another order than the dense ones: fitted values agree with
the dense fit within float32 rounding (``RTOL``/``ATOL``), and the picks are the same.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from modal_ally import (
    PDCLNet,
    PDCLRegressor,
    ally_query_strategy,
    find_label_issues,
    generate_informative,
    rank_label_issues,
    relabel,
)
from tests.helpers import MODAL_0421, STRATEGIES, run_driver
from tests.sparse_driver import FLIPPED, text_loop

RTOL, ATOL = 1e-4, 1e-5
FORMATS = ("csr", "csc")


@pytest.fixture(scope="module")
def wide():
    """300 rows x 3,000 columns, 1 % dense, labels from a random linear teacher."""
    X = sp.random(300, 3000, density=0.01, format="csr", random_state=0, dtype=np.float64)
    teacher = np.random.RandomState(1).randn(3000, 3)
    y = np.asarray(X @ teacher).argmax(axis=1)
    X_dense(X)
    return X, y


@pytest.fixture(scope="module")
def nets(wide):
    """The same net fitted on the dense, CSR and CSC forms of the same rows."""
    X, y = wide
    fit = {"dense": X[:120].toarray(), "csr": X[:120], "csc": X[:120].tocsc()}
    return {name: PDCLNet(max_epochs=8, random_state=0).fit(rows, y[:120])
            for name, rows in fit.items()}


_DENSE = {}


def X_dense(X):  # noqa: N802
    """``X.toarray()``, computed once (before ``no_densify`` makes it fail)."""
    if id(X) not in _DENSE:
        _DENSE[id(X)] = (X, X.toarray())
    return _DENSE[id(X)][1]


def pool_of(X, form):
    return X.toarray() if form == "dense" else X.asformat(form)


@pytest.fixture
def no_densify(monkeypatch):
    """Make every scipy densification and torch's to_dense fail during the test."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    monkeypatch.setattr(sp._base._spbase, "toarray", refuse)
    monkeypatch.setattr(sp._base._spbase, "todense", refuse)
    monkeypatch.setattr(torch.Tensor, "to_dense", refuse)


@pytest.mark.parametrize("form", FORMATS)
def test_fit_and_inference_match_dense(nets, wide, form):
    X, y = wide
    dense, net = nets["dense"], nets[form]
    assert net.feature_shape_ == (3000,)
    np.testing.assert_allclose(net.lambdas_, dense.lambdas_, rtol=RTOL, atol=ATOL)
    pool = X[120:]
    for method in ("predict_proba", "embed", "predict_dual"):
        np.testing.assert_allclose(getattr(net, method)(pool_of(pool, form)),
                                   getattr(dense, method)(pool.toarray()),
                                   rtol=RTOL, atol=ATOL, err_msg=method)
    np.testing.assert_array_equal(net.predict(pool_of(pool, form)),
                                  dense.predict(pool.toarray()))
    assert net.score(pool_of(pool, form), y[120:]) == dense.score(pool.toarray(), y[120:])


def test_sparse_matrix_and_sparse_array_and_coo_are_read_alike(nets, wide):
    X, _ = wide
    net, pool = nets["csr"], X[120:]
    expected = net.predict_proba(pool)
    for other in (sp.csr_array(pool), pool.tocoo(), sp.csc_array(pool)):
        np.testing.assert_array_equal(net.predict_proba(other), expected)


def test_regressor_on_sparse_rows(wide):
    X, _ = wide
    y = np.asarray(X @ np.random.RandomState(2).randn(3000)).ravel()
    dense = PDCLRegressor(max_epochs=5, random_state=0).fit(X[:120].toarray(), y[:120])
    for form in FORMATS:
        net = PDCLRegressor(max_epochs=5, random_state=0).fit(X[:120].asformat(form), y[:120])
        np.testing.assert_allclose(net.predict(X[120:].asformat(form)),
                                   dense.predict(X[120:].toarray()), rtol=RTOL, atol=1e-4)
        np.testing.assert_allclose(net.lambdas_, dense.lambdas_, rtol=RTOL, atol=ATOL)


STRATEGY_CASES = [*STRATEGIES, "paper"]


def query(name, net, X_pool, n_instances):
    if name == "paper":
        result = ally_query_strategy(net, X_pool, n_instances, method="paper",
                                     random_state=0)
    else:
        result = STRATEGIES[name](net, X_pool, n_instances, random_state=0)
    return np.asarray(result[0] if isinstance(result, tuple) else result)


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("name", STRATEGY_CASES)
def test_every_strategy_on_a_sparse_pool(nets, wide, name, form, no_densify):
    X, _ = wide
    picks = query(name, nets[form], X[120:].asformat(form), 7)
    assert picks.shape == (7,) and len(set(picks.tolist())) == 7
    assert picks.min() >= 0 and picks.max() < 180
    np.testing.assert_array_equal(picks, query(name, nets["dense"], X_dense(X)[120:], 7))


def test_chunked_pool_pass_reads_a_csc_pool_chunk_by_chunk(nets, wide, no_densify):
    X, _ = wide
    net = nets["csr"]
    net.set_params(chunk_size=16)  # 12 chunks of the 180 pool rows
    try:
        picks = query("ally", net, X[120:].tocsc(), 5)
        scores = net.predict_dual(X[120:].tocsc())
    finally:
        net.set_params(chunk_size=4096)
    np.testing.assert_array_equal(picks, query("ally", net, X[120:], 5))
    np.testing.assert_allclose(scores, net.predict_dual(X[120:]), rtol=RTOL, atol=ATOL)


def test_label_audit_and_relabel_on_a_sparse_labeled_set(wide, no_densify):
    X, y = wide
    given = y[:120].copy()
    given[:6] = (given[:6] + 1) % 3
    net = PDCLNet(max_epochs=15, random_state=0).fit(X[:120], given)
    order, scores = rank_label_issues(net, y=given)
    assert sorted(order.tolist()) == list(range(120)) and np.isfinite(scores).all()
    assert find_label_issues(net, y=given).shape == (120,)
    done = relabel(net, lambda rows, positions: y[positions], n_instances=10,
                   X=X[:120].tocsc(), y=given)
    assert sp.issparse(done.indices) is False and len(done.indices) == 10
    assert net.lambdas_.shape == (120,)


def test_stopping_criteria_read_a_sparse_pool(wide, no_densify):
    from modAL.models import ActiveLearner

    from modal_ally.stopping import (
        DualCriterion,
        MaxConfidence,
        OverallUncertainty,
        StabilizingPredictions,
    )

    X, y = wide
    learner = ActiveLearner(estimator=PDCLNet(max_epochs=5, random_state=0),
                            query_strategy=ally_query_strategy, X_training=X[:60],
                            y_training=y[:60])
    for criterion in (StabilizingPredictions(), OverallUncertainty(), MaxConfidence(),
                      DualCriterion(n_instances=10)):
        decision = criterion.check(learner, X[60:].tocsc())
        assert decision.n_evaluated == 240 and decision.stop is False, decision


def test_nan_and_inf_in_sparse_values_are_reported(nets, wide):
    X, y = wide
    for bad in (np.nan, np.inf):
        rows = X[:120].copy()
        rows.data[5] = bad
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            PDCLNet(max_epochs=1).fit(rows, y[:120])
        pool = X[120:].tocsc()
        pool.data[-1] = bad
        net = nets["csr"]
        before = net.lambdas_.copy()
        for name in ("ally", "random"):
            with pytest.raises(ValueError, match="X_pool contains NaN or infinity"):
                query(name, net, pool, 3)
        np.testing.assert_array_equal(net.lambdas_, before)
    rows = X[:120].copy()
    rows.data[0] = 1e300
    with pytest.raises(ValueError, match="overflow float32"):
        PDCLNet(max_epochs=1).fit(rows, y[:120])


class ReshapingModule(nn.Module):
    """A module whose forward views its input: torch's sparse tensors have no view."""

    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.hidden = nn.Linear(input_dim, 8)
        self.out = nn.Linear(8, output_dim)

    def forward(self, X):  # noqa: N803
        return self.out(torch.relu(self.hidden(X.view(X.shape[0], -1))))


def test_a_module_that_cannot_take_sparse_input_is_named(wide):
    X, y = wide
    net = PDCLNet(ReshapingModule, max_epochs=1)
    with pytest.raises(TypeError, match="ReshapingModule cannot take one.*toarray"):
        net.fit(X[:50], y[:50])
    assert not hasattr(net, "lambdas_")
    # the same module on dense rows works
    PDCLNet(ReshapingModule, max_epochs=1).fit(X[:50].toarray(), y[:50])


def test_a_module_whose_embedding_is_the_sparse_input_is_refused(wide):
    X, y = wide
    net = PDCLNet(nn.Linear, module__in_features=3000, module__out_features=3, max_epochs=1)
    with pytest.raises(TypeError, match="embedding is its input itself.*3000 columns"):
        net.fit(X[:50], y[:50])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sparse_rows_on_cuda(nets, wide):
    X, y = wide
    net = PDCLNet(max_epochs=8, random_state=0, device="cuda").fit(X[:120], y[:120])
    cpu = nets["csr"]
    np.testing.assert_allclose(net.lambdas_, cpu.lambdas_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(net.predict_proba(X[120:].tocsc()),
                               cpu.predict_proba(X[120:]), rtol=1e-3, atol=1e-4)
    for name in STRATEGY_CASES:
        picks = query(name, net, X[120:], 7)
        assert len(set(picks.tolist())) == 7 and picks.max() < 180, name


def test_generate_informative_refuses_sparse_rows(nets, wide):
    X, _ = wide
    with pytest.raises(TypeError, match="dense"):
        generate_informative(nets["csr"], X[:3], n_steps=2)


def test_text_pipeline_loop_modal_041(no_densify):
    runs = text_loop(strategies=("ally",))
    check_text_runs(runs, vectorizers=2, strategies=1)


@pytest.mark.slow
def test_text_pipeline_every_strategy_modal_041():
    check_text_runs(text_loop(), vectorizers=2, strategies=len(STRATEGY_CASES))


@pytest.mark.parametrize("quick", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["ally", "every-strategy"])
def test_text_pipeline_loop_modal_0421(monkeypatch, quick):
    if not (MODAL_0421 / "modAL").is_dir():
        pytest.fail(f"modAL-python 0.4.2.1 is missing from {MODAL_0421}: run `make test`")
    monkeypatch.setenv("SPARSE_DRIVER_QUICK", "1" if quick else "0")
    report = run_driver("sparse_driver.py", MODAL_0421)
    assert str(MODAL_0421) in report["modal_file"] and report["returns_scores"] is True
    check_text_runs(report["runs"], vectorizers=2,
                    strategies=1 if quick else len(STRATEGY_CASES))


def check_text_runs(runs, *, vectorizers, strategies):
    assert len(runs) == vectorizers * strategies
    for run in runs:
        assert len(set(run["indices"])) == 3 and 0 <= min(run["indices"]) \
            and max(run["indices"]) < 160, run
        assert run["n_labeled"] == 43 and not run["warnings"], run
        assert run["accuracy"] > 0.8, run  # three topics, 40 held-out texts
        if "audit_order" in run:
            assert sorted(run["audit_order"]) == list(range(43)) and run["audit_finite"]
            # the audit's four top suspects are mostly the four rows given a wrong
            # label, and the annotator's answers differ there
            assert len(set(run["relabeled"]) & set(FLIPPED)) >= 3, run
            assert run["relabel_changed"] >= 3 and run["n_labeled_after_relabel"] == 43


# ------------------------------------------------------------------ the benchmarks
@pytest.mark.slow
def test_sparse_pool_benchmark_runs_small(tmp_path):
    from benchmarks import sparse_pool

    rows = sparse_pool.main(["--rows", "400", "--features", "3000", "--labeled", "60",
                             "--epochs", "2", "--budget", "5", "--strategies",
                             "forward,ally,coreset,random", "--workdir",
                             str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    assert [r["strategy"] for r in rows] == ["forward", "ally", "coreset", "random"]
    assert all(r["unique_picks"] is True for r in rows[1:])
    assert all(r["peak_rss_above_start_mib"] >= 0 for r in rows)
    assert "below" in (tmp_path / "out" / "sparse_pool.md").read_text()


def test_sparse_pool_rows_are_seeded_unit_norm_csr():
    from benchmarks.sparse_pool import sparse_rows

    X = sparse_rows(50, 1000, 0.01, np.random.default_rng(3))
    Y = sparse_rows(50, 1000, 0.01, np.random.default_rng(3))
    assert X.format == "csr" and X.shape == (50, 1000) and X.has_canonical_format
    np.testing.assert_array_equal(X.toarray(), Y.toarray())
    np.testing.assert_allclose(sp.linalg.norm(X, axis=1), 1.0, rtol=1e-12)
    assert 8 <= X.getnnz(axis=1).min() and X.getnnz(axis=1).max() <= 10


def test_text_benchmark_reads_a_corpus_file_and_pairs_by_seed(tmp_path):
    from benchmarks.text import CLASSES, corpus_path, load_text, paired_table

    words = {"fresh": "great fun moving", "rotten": "dull boring mess",
             "plot": "a man travels to the city"}
    rng = np.random.RandomState(0)
    rows = [(c, f"{words[c]} {' '.join(rng.choice(words[c].split(), 3))} {i}")
            for i, c in enumerate(rng.choice(CLASSES, 90))]
    path = tmp_path / "corpus.csv"
    path.write_text("category,text\n" + "\n".join(f"{c},{t}" for c, t in rows)
                    + "\nfresh,\nplot," + rows[0][1] + "\n")  # an empty and a repeated text
    assert corpus_path(path) == path
    data = load_text(path, n_test=30, max_pool=None, vocabulary=50)
    assert sp.issparse(data.X_pool) and data.X_pool.dtype == np.float32
    assert data.X_pool.shape[0] + data.X_test.shape[0] == 90  # empty and repeat dropped
    assert data.feature_shape == (data.X_pool.shape[1],) and data.n_classes == 3
    curve = [{"strategy": arm, "seed": seed, "n_labels": n, "metric": base + gain * n}
             for arm, base in (("ally", 0.5), ("random", 0.4)) for seed, gain in
             ((0, 0.001), (1, 0.002)) for n in (100, 200)]
    table = {row[0]: row for row in paired_table(curve, "ally")}
    assert table["ally"][3] == "—" and table["random"][3] == "-0.1000 ± 0.0000"
    assert table["random"][4] == "0/2"


def test_text_benchmark_says_how_to_get_its_corpus(tmp_path, monkeypatch):
    from benchmarks import text

    monkeypatch.setattr(text, "CORPUS_TARGET", tmp_path / "nowhere")
    monkeypatch.setattr(text.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit, match="make text-corpus"):
        text.corpus_path(tmp_path / "missing.csv.bz2")
