"""Tests for benchmarks/harness/datasets.py.

The torchvision sets are tested on tiny files written here in the exact on-disk formats
torchvision 0.29 reads (MNIST idx ubyte, CIFAR-10 python pickles, SVHN .mat); no real data
is downloaded.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness.datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    SVHN_MEAN,
    SVHN_STD,
    ActiveLearningData,
    load_dataset,
)

SKLEARN_SETS = {
    # name: (n_samples, n_features, n_classes or None)
    "digits": (1797, 64, 10),
    "breast_cancer": (569, 30, 2),
    "wine": (178, 13, 3),
    "diabetes": (442, 10, None),
}


# --------------------------------------------------------------------------- scikit-learn sets


@pytest.mark.parametrize("name", list(SKLEARN_SETS))
def test_sklearn_shapes_dtypes_and_split(name):
    n, d, n_classes = SKLEARN_SETS[name]
    data = load_dataset(name, random_state=0)
    assert isinstance(data, ActiveLearningData)
    assert data.name == name
    assert data.module == "mlp"
    assert data.feature_shape == (d,)
    assert data.X_pool.shape[1:] == (d,) and data.X_test.shape[1:] == (d,)
    assert len(data.X_pool) + len(data.X_test) == n
    assert len(data.X_pool) == len(data.y_pool) and len(data.X_test) == len(data.y_test)
    assert len(data.X_test) == int(np.ceil(0.3 * n))
    assert data.X_pool.dtype == np.float32 and data.X_test.dtype == np.float32
    for array in (data.X_pool, data.X_test, data.y_pool, data.y_test):
        assert np.isfinite(array).all()
    if n_classes is None:
        assert data.task == "regression" and data.n_classes is None
        assert data.y_pool.dtype == np.float32 and data.y_test.dtype == np.float32
        assert data.y_pool.min() >= 25 and data.y_pool.max() <= 346  # stays in its own units
    else:
        assert data.task == "classification" and data.n_classes == n_classes
        assert data.y_pool.dtype == np.int64 and data.y_test.dtype == np.int64
        # stratified: every class in both parts, in about the same proportions
        assert set(np.unique(data.y_pool)) == set(range(n_classes))
        assert set(np.unique(data.y_test)) == set(range(n_classes))
        p_pool = np.bincount(data.y_pool, minlength=n_classes) / len(data.y_pool)
        p_test = np.bincount(data.y_test, minlength=n_classes) / len(data.y_test)
        assert np.abs(p_pool - p_test).max() < 0.03


@pytest.mark.parametrize("name", list(SKLEARN_SETS))
def test_sklearn_deterministic_in_random_state(name):
    a = load_dataset(name, random_state=3)
    b = load_dataset(name, random_state=3)
    c = load_dataset(name, random_state=4)
    for field in ("X_pool", "y_pool", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.X_pool, c.X_pool)


def test_pool_and_test_are_disjoint_rows_of_the_data():
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True)
    data = load_dataset("wine", random_state=0)
    # the same stratified split, scaled with a scaler fitted on the pool rows only
    X_pool, X_test = train_test_split(X, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_pool)
    np.testing.assert_allclose(data.X_pool, scaler.transform(X_pool), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.X_test, scaler.transform(X_test), rtol=1e-5, atol=1e-5)
    pool_rows = {tuple(r) for r in X_pool}
    assert not any(tuple(r) in pool_rows for r in X_test)


def test_scaling():
    digits = load_dataset("digits")
    assert digits.X_pool.min() >= 0.0 and digits.X_pool.max() <= 1.0
    assert digits.X_pool.max() == 1.0
    for name in ("breast_cancer", "wine", "diabetes"):
        data = load_dataset(name)
        np.testing.assert_allclose(data.X_pool.mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(data.X_pool.std(axis=0), 1.0, atol=1e-4)
        # fitted on the pool only: the test part is not exactly standardised
        assert np.abs(data.X_test.mean(axis=0)).max() > 1e-3


def test_test_size_and_subsampling():
    data = load_dataset("digits", test_size=100, max_pool=50, max_test=20, random_state=1)
    assert len(data.X_pool) == 50 and len(data.y_pool) == 50
    assert len(data.X_test) == 20
    full = load_dataset("digits", test_size=100, random_state=1)
    pool_rows = {r.tobytes() for r in full.X_pool}
    assert all(r.tobytes() in pool_rows for r in data.X_pool)
    # max_test draws from its own stream: it does not change which pool rows are kept
    other = load_dataset("digits", test_size=100, max_pool=50, max_test=5, random_state=1)
    np.testing.assert_array_equal(data.X_pool, other.X_pool)
    # a limit above the size keeps everything
    big = load_dataset("wine", max_pool=10_000)
    assert len(big.X_pool) == len(load_dataset("wine").X_pool)


# --------------------------------------------------------------------------- digits-redundant


@pytest.mark.parametrize("r", [1, 3])
def test_digits_redundant(r):
    base = load_dataset("digits", random_state=2)
    data = load_dataset("digits-redundant", redundancy=r, random_state=2)
    assert data.name == "digits-redundant" and data.n_classes == 10
    assert data.X_pool.shape == (r * len(base.X_pool), 64)
    assert data.y_pool.shape == (r * len(base.y_pool),)
    np.testing.assert_array_equal(data.X_test, base.X_test)
    np.testing.assert_array_equal(data.y_test, base.y_test)

    def counts(X, y):
        keys = [row.tobytes() + bytes([label]) for row, label in zip(X, y)]
        values, n = np.unique(np.array(keys, dtype=object), return_counts=True)
        return dict(zip(values, n))

    base_counts = counts(base.X_pool, base.y_pool)
    red_counts = counts(data.X_pool, data.y_pool)
    assert red_counts.keys() == base_counts.keys()
    assert all(red_counts[k] == r * base_counts[k] for k in base_counts)
    if r == 1:
        np.testing.assert_array_equal(data.X_pool, base.X_pool)


def test_digits_redundant_default_is_plain_digits_and_max_pool():
    base = load_dataset("digits")
    np.testing.assert_array_equal(load_dataset("digits-redundant").X_pool, base.X_pool)
    data = load_dataset("digits-redundant", redundancy=3, max_pool=31)
    assert len(data.X_pool) == 30  # 10 distinct rows, 3 copies each
    _, n = np.unique(data.X_pool, axis=0, return_counts=True)
    assert set(n.tolist()) == {3}
    with pytest.raises(ValueError, match="max_pool"):
        load_dataset("digits-redundant", redundancy=3, max_pool=2)


# --------------------------------------------------------------------------- torchvision sets


def _write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (0x08 << 8) | array.ndim  # type 0x08 = unsigned byte, then the number of dims
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.fixture
def mnist_dir(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 30), ("t10k", 12)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0] = 0
        images[1] = 255
        labels = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(raw / f"{split}-images-idx3-ubyte", images)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        files[split] = (images, labels)
    return tmp_path, files


def test_mnist(mnist_dir):
    root, files = mnist_dir
    data = load_dataset("mnist", data_dir=root)
    assert data.task == "classification" and data.n_classes == 10 and data.module == "mlp"
    assert data.X_pool.shape == (30, 784) and data.X_test.shape == (12, 784)
    assert data.feature_shape == (784,)
    assert data.X_pool.dtype == np.float32 and data.y_pool.dtype == np.int64
    assert data.X_pool.min() == 0.0 and data.X_pool.max() == 1.0
    np.testing.assert_allclose(data.X_pool, files["train"][0].reshape(30, -1) / 255.0,
                               rtol=1e-6)
    np.testing.assert_array_equal(data.y_pool, files["train"][1])
    np.testing.assert_array_equal(data.y_test, files["t10k"][1])

    small = load_dataset("mnist", data_dir=str(root), max_pool=7, max_test=5, random_state=1)
    assert small.X_pool.shape == (7, 784) and small.X_test.shape == (5, 784)
    # the subsample is a subset of the rows, with their labels, and seeded
    full = {r.tobytes(): y for r, y in zip(data.X_pool, data.y_pool)}
    assert all(full[r.tobytes()] == y for r, y in zip(small.X_pool, small.y_pool))
    again = load_dataset("mnist", data_dir=root, max_pool=7, max_test=5, random_state=1)
    np.testing.assert_array_equal(small.X_pool, again.X_pool)


@pytest.fixture
def cifar_dir(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 6)]:
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels,
                         "filenames": [f"{name}_{i}.png" for i in range(n)]}, f)
        batches[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                     "frog", "horse", "ship", "truck"],
                     "num_cases_per_batch": 4, "num_vis": 3072}, f)
    return tmp_path, batches


def test_cifar10(cifar_dir):
    root, batches = cifar_dir
    data = load_dataset("cifar10", data_dir=root)
    assert data.module == "resnet18" and data.n_classes == 10
    assert data.X_pool.shape == (20, 3, 32, 32) and data.X_test.shape == (6, 3, 32, 32)
    assert data.feature_shape == (3, 32, 32)
    assert data.X_pool.dtype == np.float32 and data.y_test.dtype == np.int64
    # the pickled rows are already channel-major (R plane, G plane, B plane)
    raw_train = np.vstack([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    expected = raw_train.reshape(-1, 3, 32, 32) / 255.0
    mean = np.array(CIFAR10_MEAN).reshape(1, 3, 1, 1)
    std = np.array(CIFAR10_STD).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(data.X_pool, (expected - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        data.y_pool, sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), []))
    np.testing.assert_array_equal(data.y_test, batches["test_batch"][1])
    lo, hi = (0 - mean) / std, (1 - mean) / std
    assert (data.X_pool >= lo - 1e-5).all() and (data.X_pool <= hi + 1e-5).all()

    small = load_dataset("cifar10", data_dir=root, max_pool=3, max_test=2)
    assert small.X_pool.shape == (3, 3, 32, 32) and small.X_test.shape == (2, 3, 32, 32)


def test_local_files_are_trusted_but_stock_torchvision_checks_md5(cifar_dir):
    # The fixtures are not the published files: stock torchvision refuses them, which is
    # why the loader checks only that the files exist when it does not download.
    from torchvision.datasets import CIFAR10

    root, _ = cifar_dir
    with pytest.raises(RuntimeError, match="corrupted"):
        CIFAR10(str(root), train=True, download=False)
    assert load_dataset("cifar10", data_dir=root).n_pool == 20


@pytest.fixture
def svhn_dir(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    files = {}
    for split, n in (("train", 25), ("test", 11)):
        X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # H, W, C, N
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 = digit 0
        savemat(tmp_path / f"{split}_32x32.mat", {"X": X, "y": y})
        files[split] = (X, y)
    return tmp_path, files


def test_svhn(svhn_dir):
    root, files = svhn_dir
    data = load_dataset("svhn", data_dir=root)
    assert data.module == "resnet18" and data.n_classes == 10
    assert data.X_pool.shape == (25, 3, 32, 32) and data.X_test.shape == (11, 3, 32, 32)
    assert data.X_pool.dtype == np.float32 and data.y_pool.dtype == np.int64
    X, y = files["train"]
    expected_y = y.reshape(-1).astype(np.int64) % 10
    np.testing.assert_array_equal(data.y_pool, expected_y)
    assert set(data.y_pool.tolist()) == set(range(10))
    assert 10 not in data.y_test
    mean = np.array(SVHN_MEAN).reshape(1, 3, 1, 1)
    std = np.array(SVHN_STD).reshape(1, 3, 1, 1)
    expected_X = X.transpose(3, 2, 0, 1) / 255.0  # (N, C, H, W)
    np.testing.assert_allclose(data.X_pool, (expected_X - mean) / std, rtol=1e-5, atol=1e-5)

    small = load_dataset("svhn", data_dir=root, max_pool=4, random_state=5)
    assert small.X_pool.shape == (4, 3, 32, 32) and small.X_test.shape == (11, 3, 32, 32)
    assert set(small.y_pool.tolist()) <= set(range(10))


def test_torchvision_sets_ignore_test_size(svhn_dir):
    root, _ = svhn_dir
    data = load_dataset("svhn", data_dir=root, test_size=0.9)
    assert len(data.X_pool) == 25 and len(data.X_test) == 11


# --------------------------------------------------------------------------- errors


def test_unknown_name_lists_datasets():
    with pytest.raises(ValueError, match="unknown data set") as info:
        load_dataset("imagenet")
    assert all(name in str(info.value) for name in DATASETS)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn"])
def test_missing_data_dir(name, tmp_path):
    with pytest.raises(ValueError, match="--data-dir"):
        load_dataset(name)
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere") as info:
        load_dataset(name, data_dir=missing)
    assert "--data-dir" in str(info.value) and "download=True" in str(info.value)
    # the directory exists but holds no files
    with pytest.raises(FileNotFoundError, match="missing") as info:
        load_dataset(name, data_dir=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_partial_cifar_files_are_reported(cifar_dir):
    root, _ = cifar_dir
    (root / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(FileNotFoundError, match="batches.meta"):
        load_dataset("cifar10", data_dir=root)


@pytest.mark.parametrize("name", ["digits", "wine", "diabetes", "mnist"])
def test_redundancy_only_for_digits_redundant(name):
    with pytest.raises(ValueError, match="redundancy"):
        load_dataset(name, redundancy=2)
    load_dataset("wine", redundancy=1)  # the neutral value is accepted everywhere


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_redundancy(bad):
    with pytest.raises(ValueError, match="redundancy"):
        load_dataset("digits-redundant", redundancy=bad)


@pytest.mark.parametrize("kwargs", [{"max_pool": 0}, {"max_pool": -3}, {"max_pool": 2.5},
                                    {"max_test": 0}, {"max_test": "10"}, {"test_size": 1.5},
                                    {"test_size": 0}, {"random_state": "a"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        load_dataset("wine", **kwargs)


# ----------------------------------------------------------------- gz MNIST, Parkinsons, manyclass
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
if not SHARED_DATA.is_dir():
    SHARED_DATA = Path("/work/shared/data")


def test_mnist_reads_gzip_idx_files(mnist_dir):
    import gzip

    root, files = mnist_dir
    for path in (root / "MNIST" / "raw").iterdir():
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    data = load_dataset("mnist", data_dir=root)
    np.testing.assert_array_equal(data.y_test, files["t10k"][1])
    np.testing.assert_allclose(data.X_pool, files["train"][0].reshape(30, -1) / 255.0,
                               rtol=1e-6)
    cnn = load_dataset("mnist-cnn", data_dir=root)
    assert cnn.feature_shape == (1, 28, 28) and cnn.module == "cnn"
    np.testing.assert_array_equal(cnn.X_pool.reshape(30, -1), data.X_pool)
    with pytest.raises(ValueError, match="never downloaded"):
        load_dataset("mnist", data_dir=root, download=True)


def test_read_idx_rejects_other_files(tmp_path):
    from benchmarks.harness.datasets import read_idx

    bad = tmp_path / "x-ubyte"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    short = tmp_path / "y-ubyte"
    short.write_bytes(struct.pack(">I", 0x0801) + struct.pack(">I", 5) + b"\x00\x01")
    with pytest.raises(ValueError, match="data bytes"):
        read_idx(short)


def test_manyclass_is_fixed_and_standardised():
    data = load_dataset("manyclass", max_pool=3000, random_state=1)
    assert data.n_classes == 26 and data.feature_shape == (40,) and data.n_pool == 3000
    assert data.n_test == 6000 and set(np.unique(data.y_test)) == set(range(26))
    again = load_dataset("manyclass", max_pool=3000, random_state=1)
    np.testing.assert_array_equal(data.X_pool, again.X_pool)
    full = load_dataset("manyclass", random_state=1)
    np.testing.assert_allclose(full.X_pool.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(full.X_pool.std(axis=0), 1.0, atol=1e-4)


def test_parkinsons_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="parkinsons_updrs.data"):
        load_dataset("parkinsons", data_dir=tmp_path)
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("parkinsons")


def test_parkinsons_from_a_small_csv(tmp_path):
    from benchmarks.harness.datasets import PARKINSONS_FEATURES

    folder = tmp_path / "parkinsons"
    folder.mkdir()
    rng = np.random.default_rng(0)
    columns = ["subject#", "age", "sex", "test_time", "motor_UPDRS", "total_UPDRS",
               *PARKINSONS_FEATURES[2:]]
    table = rng.normal(size=(50, len(columns)))
    lines = [",".join(columns)] + [",".join(f"{v:.6g}" for v in row) for row in table]
    (folder / "parkinsons_updrs.data").write_text("\n".join(lines) + "\n")
    data = load_dataset("parkinsons", data_dir=tmp_path, test_size=0.2, random_state=3)
    assert data.task == "regression" and data.n_classes is None
    assert data.feature_shape == (18,) and data.n_pool == 40 and data.n_test == 10
    assert data.y_pool.dtype == np.float32
    np.testing.assert_allclose(data.X_pool.mean(axis=0), 0.0, atol=1e-5)
    target = set(np.round(table[:, columns.index("total_UPDRS")], 3))
    assert set(np.round(data.y_pool.astype(np.float64), 3)) <= target


@pytest.mark.skipif(not (SHARED_DATA / "parkinsons").is_dir(),
                    reason="the shared data folder (../shared/data/parkinsons) is absent")
def test_parkinsons_real_file():
    data = load_dataset("parkinsons", data_dir=SHARED_DATA)
    assert data.n_pool + data.n_test == 5875 and data.feature_shape == (18,)
    assert 5 < float(data.y_pool.mean()) < 60


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(),
                    reason="the shared data folder (../shared/data/MNIST/raw) is absent")
def test_mnist_real_files():
    data = load_dataset("mnist", data_dir=SHARED_DATA, max_pool=500, max_test=200)
    assert data.X_pool.shape == (500, 784) and data.X_test.shape == (200, 784)
    assert set(np.unique(data.y_pool)) == set(range(10))
