"""The package's shape, checked: one-way imports, small functions and files, no
repeated blocks, and the pool's values checked exactly once per query."""

import ast
import hashlib
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from modAL.models import ActiveLearner

import modal_ally
from modal_ally import (
    ally_query_strategy,
    ally_redundancy_aware_query_strategy,
    badge_query_strategy,
    coreset_query_strategy,
    random_query_strategy,
)
from tests.helpers import assert_no_import_cycle

PACKAGE = Path(modal_ally.__file__).parent

#: Every module's layer: a module imports only from lower layers. A module not listed
#: is placed at UNLISTED (above the strategies, below the package's ``__init__``): list
#: a new module here at the layer it belongs to.
UNLISTED = 11
LAYERS = {
    "_validation": 0, "_torch_utils": 0, "_compat": 0, "_split": 0, "_allocator": 0,
    "answers": 0, "_journal_db": 0, "_label_studio_sdk": 0,
    "_inference": 1, "data": 1, "modules": 1, "clustering": 1, "_seeding": 1,
    "_neighbors": 1,
    "distributed._select": 2, "distributed._pool": 3, "distributed": 4,
    "distributed._ally": 7,
    "distributed._baselines": 6,
    "dual_head": 2, "_dual_state": 2, "_pdcl_checks": 2, "_guard": 2,
    "callbacks": 3, "_dual_heads": 3,
    "_pdcl": 4, "_persistence": 4,
    "net": 5, "modal_patches": 5,
    "generative": 6, "strategies._common": 6, "strategies._stream": 6,
    "diagnostics._constrained": 6, "label_audit": 6, "relabeling": 7,
    "strategies.badge": 7, "strategies.coreset": 7, "strategies.random_sampling": 7,
    "strategies.ally": 8,  # its default rule draws in BADGE's gradient space
    "_journal_fit": 6, "journal": 8,
    "strategies.redundancy": 9,
    "strategies": 10,
    "baselines": 11, "selection": 11, "second_opinions": 11,
    "_label_studio_journal": 12, "label_studio": 13,
    "diagnostics.duality": 11, "diagnostics": 11,
    "": 12,
}


def module_names():
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def package_imports(name):
    """The package modules ``name`` imports (relative imports resolved)."""
    path = PACKAGE.joinpath(*name.split(".")) if name else PACKAGE
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)]
            target = ".".join(base + (node.module.split(".") if node.module else []))
            found.add(target)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in getattr(node, "names", []):
                full = node.module if isinstance(node, ast.ImportFrom) else alias.name
                if full and full.split(".")[0] == "modal_ally":
                    found.add(".".join(full.split(".")[1:]))
    return found


def test_every_listed_module_exists():
    assert set(LAYERS) <= set(module_names())


@pytest.mark.parametrize("name", module_names(), ids=lambda n: n or "modal_ally")
def test_imports_flow_one_way(name):
    for target in package_imports(name):
        if target not in LAYERS and name not in LAYERS:
            continue  # two unlisted modules: test_no_import_cycle covers them
        assert LAYERS.get(target, UNLISTED) < LAYERS.get(name, UNLISTED), (
            f"{name} imports {target}: imports must flow down the layers of "
            "tests/test_structure.py LAYERS (list a new module there)")


def test_no_import_cycle():
    assert_no_import_cycle({name: package_imports(name) for name in module_names()})


def test_low_level_helpers_import_nothing_from_the_package():
    for name in ("_validation", "_torch_utils"):
        assert package_imports(name) == set(), name


def test_each_module_imports_in_a_fresh_interpreter():
    """One fresh interpreter; before each module, every modal_ally module is
    forgotten, so each import runs alone (third-party packages stay loaded)."""
    script = (
        "import importlib, sys, torch, skorch, sklearn, scipy, modAL\n"
        f"for name in {sorted(module_names())!r}:\n"
        "    for key in [k for k in sys.modules if k.split('.')[0] == 'modal_ally']:\n"
        "        del sys.modules[key]\n"
        "    importlib.import_module('modal_ally' + ('.' + name if name else ''))\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def _code_lines(function):
    body = function.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        body = body[1:]
    return 0 if not body else body[-1].end_lineno - body[0].lineno + 1


def test_no_function_over_60_lines_and_no_file_over_400():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 400, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert _code_lines(node) <= 60, f"{path}:{node.name}"


def _normalized_code_lines(path):
    """Code lines of a file (no docstrings, comments or blank lines), whitespace-free."""
    tree = ast.parse(path.read_text())
    doc_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef,
                             ast.AsyncFunctionDef)) and ast.get_docstring(node):
            first = node.body[0]
            doc_lines.update(range(first.lineno, first.end_lineno + 1))
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        code = re.sub(r"\s+", "", line.split("#")[0])
        if code and number not in doc_lines and not code.startswith(("from", "import")) \
                and code not in {")", "]", "}", "),", "try:", "else:", "return"}:
            out.append((code, f"{path.name}:{number}"))
    return out


def test_no_six_line_block_repeated():
    windows = Counter()
    where = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = _normalized_code_lines(path)
        for i in range(len(lines) - 5):
            key = hashlib.sha1("\n".join(c for c, _ in lines[i:i + 6]).encode()).hexdigest()
            windows[key] += 1
            where.setdefault(key, []).append(lines[i][1])
    repeated = [where[key] for key, count in windows.items() if count > 1]
    assert not repeated, repeated


# ---------------------------------------------------------------------------- the pool
@pytest.fixture(scope="module")
def learner(digits, fitted_net):
    return ActiveLearner(estimator=fitted_net, query_strategy=ally_query_strategy,
                         X_training=digits["X_train"], y_training=digits["y_train"])


@pytest.fixture
def counted_checks(monkeypatch):
    """Rows checked for NaN/inf, by array name (every module's reference is wrapped)."""
    from modal_ally import _validation

    original = _validation.as_finite_float32
    counts = Counter()

    def counting(block, *, name="X"):
        counts[name] += int(block.shape[0])
        return original(block, name=name)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("modal_ally") \
                and getattr(module, "as_finite_float32", None) is original:
            monkeypatch.setattr(module, "as_finite_float32", counting)
    return counts


@pytest.mark.parametrize("strategy", [
    ally_query_strategy, ally_redundancy_aware_query_strategy, badge_query_strategy,
    coreset_query_strategy, random_query_strategy], ids=lambda s: s.__name__)
def test_pool_values_checked_exactly_once_per_row(strategy, learner, digits, counted_checks):
    pool = digits["X_pool"].astype(np.float64)
    strategy(learner, pool, 5, random_state=0)
    assert counted_checks["X_pool"] == pool.shape[0]


def test_memmap_pool_of_any_dtype_is_streamed(learner, digits, tmp_path):
    pool = digits["X_pool"].astype(np.float64)
    mapped = np.lib.format.open_memmap(tmp_path / "pool.npy", mode="w+",
                                       dtype=np.float64, shape=pool.shape)
    mapped[:] = pool
    expected = ally_query_strategy(learner, pool, 7, random_state=0)
    got = ally_query_strategy(learner, mapped, 7, random_state=0)
    np.testing.assert_array_equal(np.asarray(got[0] if isinstance(got, tuple) else got),
                                  np.asarray(expected[0] if isinstance(expected, tuple)
                                             else expected))


@pytest.mark.parametrize("value,message", [(np.nan, "X_pool contains NaN or infinity"),
                                           (1e300, "X_pool has values that overflow float32")])
def test_bad_value_in_a_late_chunk_is_named(learner, digits, value, message):
    pool = digits["X_pool"].astype(np.float64)
    pool[-1, 3] = value
    learner.estimator.set_params(chunk_size=64)
    try:
        with pytest.raises(ValueError, match=message):
            ally_query_strategy(learner, pool, 3, random_state=0)
    finally:
        learner.estimator.set_params(chunk_size=4096)


@pytest.mark.parametrize("chunk_size,pca_sample", [(4096, 20000), (64, 300)])
def test_streamed_projection_ranks_as_the_full_embeddings(learner, digits, monkeypatch,
                                                          chunk_size, pca_sample):
    from modal_ally import clustering
    from modal_ally.strategies import ally

    monkeypatch.setattr(clustering, "PCA_SAMPLE", pca_sample)
    monkeypatch.setattr(ally, "PCA_SAMPLE", pca_sample)
    monkeypatch.setattr(ally, "STREAM_ABOVE_BYTES", 0)
    learner.estimator.set_params(chunk_size=chunk_size)
    try:
        ranked = [ally.ranked_pool(ally.validate_ally_query(
            learner, digits["X_pool"], 20, strategy="test", random_state=0, n_clusters=None,
            max_dual=None, skip_top_quantile=None, cluster_components=32),
            keep_embeddings=keep) for keep in (True, False)]
    finally:
        learner.estimator.set_params(chunk_size=4096)
    (full, scores_full, order_full), (none, scores, order) = ranked
    assert full is not None and none is None
    np.testing.assert_allclose(scores, scores_full, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(order[:20], order_full[:20])
