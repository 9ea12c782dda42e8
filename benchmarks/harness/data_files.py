"""The benchmark data sets read from disk (``data_dir``): MNIST from its IDX files without
torchvision, UCI Parkinsons Telemonitoring with pandas, CIFAR-10 and SVHN through
torchvision (local files trusted, downloads md5-checked). :func:`load_dataset
<benchmarks.harness.datasets.load_dataset>` is the entry point."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from benchmarks.harness.data_split import make_data, subsample

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "MNIST_SHAPES", "PARKINSONS_FEATURES",
           "PARKINSONS_TARGET", "SVHN_MEAN", "SVHN_STD", "check_data_dir", "load_cifar10",
           "load_mnist", "load_parkinsons", "load_svhn", "read_idx"]

#: The Parkinsons columns used as features (``subject#``, ``test_time`` and the targets
#: ``motor_UPDRS`` / ``total_UPDRS`` are not features).
PARKINSONS_FEATURES = (
    "age", "sex", "Jitter(%)", "Jitter(Abs)", "Jitter:RAP", "Jitter:PPQ5", "Jitter:DDP",
    "Shimmer", "Shimmer(dB)", "Shimmer:APQ3", "Shimmer:APQ5", "Shimmer:APQ11", "Shimmer:DDA",
    "NHR", "HNR", "RPDE", "DFA", "PPE")
PARKINSONS_TARGET = "total_UPDRS"
_PARKINSONS_FILE = os.path.join("parkinsons", "parkinsons_updrs.data")

#: Per-channel mean and standard deviation of the CIFAR-10 training images (RGB, in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
#: Per-channel mean and standard deviation of the SVHN training images (RGB, in [0, 1]).
SVHN_MEAN = (0.4377, 0.4438, 0.4728)
SVHN_STD = (0.1980, 0.2010, 0.1970)

# The files torchvision 0.29 reads when it does not download (paths relative to data_dir).
_MNIST_FILES = tuple(os.path.join("MNIST", "raw", f"{split}-{kind}-ubyte")
                     for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1"))
MNIST_SHAPES = {"mnist": (784,), "mnist-cnn": (1, 28, 28)}
_CIFAR10_FILES = tuple(os.path.join("cifar-10-batches-py", name) for name in
                       (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"))
_SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")


def check_data_dir(name, data_dir, download):
    """``data_dir`` as a path, checked: it exists and holds every file the set reads
    (created instead when ``download``)."""
    hint = ("pass --data-dir (data_dir=...) pointing at a directory with the files, or "
            "download=True where a network exists")
    if data_dir is None:
        raise ValueError(f"data set {name!r} is read from disk and needs data_dir; {hint}")
    root = Path(data_dir).expanduser()
    if download:
        root.mkdir(parents=True, exist_ok=True)
        return root
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {str(root)!r} for {name!r} does not exist; "
                                f"{hint}")
    if name in MNIST_SHAPES:
        missing = [f + ".gz" for f in _MNIST_FILES
                   if not ((root / f).is_file() or (root / (f + ".gz")).is_file())]
    else:
        expected = {"parkinsons": (_PARKINSONS_FILE,), "cifar10": _CIFAR10_FILES,
                    "svhn": _SVHN_FILES}[name]
        missing = [f for f in expected if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"data set {name!r} not found in {str(root)!r}: missing "
                                f"{', '.join(missing)}; {hint}")
    return root


def _trusting(dataset_cls):
    """A subclass of a torchvision data set that checks only that its files exist.

    torchvision's CIFAR10 and SVHN compare the md5 of their files against the published data
    before loading. This loader trusts the local files instead (they may be a subset, a
    re-packed copy or the small fixtures of the tests); when downloading, the stock classes
    are used, so downloads stay md5-checked. The class name is kept because some torchvision
    data sets derive their folder from it.
    """
    from torchvision.datasets.utils import check_integrity

    class Trusting(dataset_cls):
        def _check_integrity(self) -> bool:
            if hasattr(self, "split_list"):  # SVHN: one .mat file directly in root
                return check_integrity(os.path.join(self.root, self.filename))
            return all(check_integrity(os.path.join(self.root, self.base_folder, f))
                       for f, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            # CIFAR10 checks the md5 of batches.meta separately from _check_integrity.
            path = os.path.join(self.root, self.base_folder, self.meta["filename"])
            if not check_integrity(path):
                raise RuntimeError(f"CIFAR metadata file {path} not found")
            with open(path, "rb") as infile:
                self.classes = pickle.load(infile, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    Trusting.__name__ = Trusting.__qualname__ = dataset_cls.__name__
    return Trusting


def _split_rngs(random_state):
    return tuple(np.random.default_rng(s) for s in
                 np.random.SeedSequence(random_state).spawn(2))


def _normalize_nchw(images_nchw_uint8, mean, std):
    X = images_nchw_uint8.astype(np.float32) / np.float32(255.0)
    X -= np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    X /= np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    return X


def read_idx(path):
    """Read one IDX file (``.gz`` compressed or not) into a numpy array of its own dtype."""
    import gzip
    import struct

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{str(path)!r} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"{str(path)!r}: unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(dtypes[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{str(path)!r}: {len(body)} data bytes for shape {shape}")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _mnist_file(root, name):
    plain = Path(root) / name
    return plain if plain.is_file() else plain.with_name(plain.name + ".gz")


def load_mnist(root, *, name, random_state, max_pool, max_test):
    pool_rng, test_rng = _split_rngs(random_state)
    parts = []
    for split, limit, rng in (("train", max_pool, pool_rng), ("t10k", max_test, test_rng)):
        images = read_idx(_mnist_file(root, os.path.join("MNIST", "raw",
                                                         f"{split}-images-idx3-ubyte")))
        labels = read_idx(_mnist_file(root, os.path.join("MNIST", "raw",
                                                         f"{split}-labels-idx1-ubyte")))
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f"MNIST {split}: {images.shape} images for {labels.shape} labels")
        rows = subsample(len(images), limit, rng)
        X = images[rows].reshape(len(rows), *MNIST_SHAPES[name]).astype(np.float32)
        parts += [X / np.float32(255.0), labels[rows].astype(np.int64)]
    module = "cnn" if name == "mnist-cnn" else "mlp"
    return make_data(name, "classification", parts[0], parts[1], parts[2], parts[3], 10, module)


def load_parkinsons(root, *, test_size, random_state, max_pool, max_test):
    import pandas as pd
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    path = Path(root) / _PARKINSONS_FILE
    table = pd.read_csv(path)
    missing = [c for c in (*PARKINSONS_FEATURES, PARKINSONS_TARGET) if c not in table.columns]
    if missing:
        raise ValueError(f"{str(path)!r} lacks the columns {', '.join(missing)}")
    X = table[list(PARKINSONS_FEATURES)].to_numpy(dtype=np.float64)
    y = table[PARKINSONS_TARGET].to_numpy(dtype=np.float64)
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=test_size,
                                                      random_state=random_state)
    scaler = StandardScaler().fit(X_pool)
    X_pool, X_test = scaler.transform(X_pool), scaler.transform(X_test)
    pool_rng, test_rng = _split_rngs(random_state)
    rows = subsample(len(X_pool), max_pool, pool_rng)
    X_pool, y_pool = X_pool[rows], y_pool[rows]
    rows = subsample(len(X_test), max_test, test_rng)
    return make_data("parkinsons", "regression", X_pool, y_pool, X_test[rows], y_test[rows], None,
                 "mlp")


def load_cifar10(root, *, download, random_state, max_pool, max_test):
    from torchvision.datasets import CIFAR10

    cls = CIFAR10 if download else _trusting(CIFAR10)
    pool_rng, test_rng = _split_rngs(random_state)
    parts = []
    for train, limit, rng in ((True, max_pool, pool_rng), (False, max_test, test_rng)):
        ds = cls(str(root), train=train, download=download)
        images, labels = np.asarray(ds.data), np.asarray(ds.targets)  # images are NHWC uint8
        rows = subsample(len(images), limit, rng)
        X = _normalize_nchw(images[rows].transpose(0, 3, 1, 2), CIFAR10_MEAN, CIFAR10_STD)
        parts += [X, labels[rows]]
    return make_data("cifar10", "classification", parts[0], parts[1], parts[2], parts[3], 10,
                 "resnet18")


def load_svhn(root, *, download, random_state, max_pool, max_test):
    from torchvision.datasets import SVHN

    cls = SVHN if download else _trusting(SVHN)
    pool_rng, test_rng = _split_rngs(random_state)
    parts = []
    for split, limit, rng in (("train", max_pool, pool_rng), ("test", max_test, test_rng)):
        ds = cls(str(root), split=split, download=download)
        # torchvision already maps label 10 (digit 0) to 0 and transposes to NCHW uint8.
        images, labels = np.asarray(ds.data), np.asarray(ds.labels).reshape(-1)
        rows = subsample(len(images), limit, rng)
        X = _normalize_nchw(images[rows], SVHN_MEAN, SVHN_STD)
        parts += [X, labels[rows]]
    return make_data("svhn", "classification", parts[0], parts[1], parts[2], parts[3], 10,
                 "resnet18")
