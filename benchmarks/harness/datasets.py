"""Pool/test data sets for the active-learning benchmarks.

One entry point, :func:`load_dataset`, turns a data-set name into an
:class:`ActiveLearningData`: a pool (the unlabelled set the strategies query from; its labels
are the oracle's answers) and a held-out test set, as numpy arrays ready for the shipped
backbones (:class:`modal_ally.MLP` for ``module == "mlp"``,
:class:`modal_ally.ResNet18Embedding` for ``module == "resnet18"``).

Data sets
---------
``digits``, ``breast_cancer``, ``wine``
    scikit-learn's bundled classification sets (no download). Stratified, seeded
    pool/test split. ``digits`` is scaled by ``1/16`` to ``[0, 1]``; ``breast_cancer`` and
    ``wine`` are standardised with a :class:`~sklearn.preprocessing.StandardScaler` fitted on
    the pool rows only.
``diabetes``
    scikit-learn's bundled regression set: ``X`` standardised on the pool rows, ``y`` left in
    its own units (float32). Plain (unstratified) seeded split.
``digits-redundant``
    The ``digits`` split with every pool row repeated ``redundancy`` times (exact copies), to
    test how strategies cope with duplicated candidates. The test set is not repeated.
``parkinsons``
    UCI Parkinsons Telemonitoring (``data_dir/parkinsons/parkinsons_updrs.data``), the
    regression set of the ALLY paper (section 5.3): target ``total_UPDRS`` (float32, in its
    own units), features ``age``, ``sex`` and the 16 voice measures (``Jitter(%)`` ..
    ``PPE``), standardised with a scaler fitted on the pool rows only. ``subject#``,
    ``test_time`` and ``motor_UPDRS`` (a part of the target) are left out. The test set is a
    seeded random ``test_size`` share of the *recordings* (as in the paper, which splits at
    random): every patient has recordings on both sides, so the task is to predict a known
    patient's score from new recordings, and a strategy is rewarded for covering the
    patients. A split by patient would measure generalisation to new patients instead, a
    task on which 42 patients and voice features alone leave little to learn.
``manyclass``
    A synthetic 26-class task (:func:`sklearn.datasets.make_classification`: 20,000 rows,
    40 features of which 30 informative, one cluster per class, ``class_sep=1.5``; the
    data do not depend on ``random_state``, only the split does), standardised on the pool.
    With 100 initial labels every class has about 4 labels, the regime where the paper's
    ALLY fell below random sampling.
``mnist``
    Read from the IDX files in ``data_dir/MNIST/raw/`` (gzip-compressed ``*-ubyte.gz`` as
    shipped, or uncompressed), directly and without torchvision: the 60,000 training images
    are the pool and the 10,000 test images the test set, pixels scaled to ``[0, 1]`` and
    flattened to 784 features (``mnist-cnn``: the same data shaped ``(1, 28, 28)`` for
    :class:`benchmarks.harness.modules.SmallCNN`). Nothing is downloaded or extracted.
``cifar10``, ``svhn``
    Read with torchvision from ``data_dir``; the data sets' own train split is the pool and
    their test split the test set. Nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

import numbers
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = ("digits", "breast_cancer", "wine", "diabetes", "digits-redundant", "manyclass",
            "parkinsons", "mnist", "mnist-cnn", "cifar10", "svhn")

_SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "diabetes", "digits-redundant",
                     "manyclass")
_FILE_DATASETS = ("parkinsons", "mnist", "mnist-cnn", "cifar10", "svhn")
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
_MNIST_SHAPES = {"mnist": (784,), "mnist-cnn": (1, 28, 28)}
_CIFAR10_FILES = tuple(os.path.join("cifar-10-batches-py", name) for name in
                       (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"))
_SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")


@dataclass
class ActiveLearningData:
    """A pool/test split ready for an active-learning benchmark.

    Attributes
    ----------
    name : str
        The data-set name, one of :data:`DATASETS`.
    task : str
        ``"classification"`` or ``"regression"``.
    X_pool : numpy.ndarray
        float32, shape ``(n_pool, *feature_shape)``: the candidates a strategy queries from.
    y_pool : numpy.ndarray
        The pool's labels: int64 in ``0 .. n_classes - 1`` (classification) or float32
        (regression).
    X_test : numpy.ndarray
        float32, shape ``(n_test, *feature_shape)``.
    y_test : numpy.ndarray
        The test labels, same dtype as ``y_pool``.
    n_classes : int or None
        Number of classes; ``None`` for regression.
    module : str
        Which backbone the benchmark should use: ``"mlp"``, ``"resnet18"`` or ``"cnn"``
        (:class:`benchmarks.harness.modules.SmallCNN`).
    feature_shape : tuple
        ``X_pool.shape[1:]``.
    """

    name: str
    task: str
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None
    module: str
    feature_shape: tuple

    def __post_init__(self):
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {self.task!r}")
        if self.module not in ("mlp", "resnet18", "cnn"):
            raise ValueError(f"module must be 'mlp', 'resnet18' or 'cnn', got {self.module!r}")
        if (self.n_classes is None) != (self.task == "regression"):
            raise ValueError("n_classes must be None exactly when task is 'regression'")
        self.feature_shape = tuple(int(d) for d in self.feature_shape)
        for split in ("pool", "test"):
            X, y = getattr(self, f"X_{split}"), getattr(self, f"y_{split}")
            if tuple(X.shape[1:]) != self.feature_shape:
                raise ValueError(f"X_{split} has per-sample shape {tuple(X.shape[1:])}, "
                                 f"expected feature_shape {self.feature_shape}")
            if len(X) != len(y):
                raise ValueError(f"X_{split} has {len(X)} rows but y_{split} has {len(y)}")

    @property
    def n_pool(self) -> int:
        """Number of pool rows."""
        return int(self.X_pool.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test rows."""
        return int(self.X_test.shape[0])


def load_dataset(name, *, data_dir=None, redundancy=1, test_size=0.3, random_state=0,
                 download=False, max_pool=None, max_test=None) -> ActiveLearningData:
    """Load a benchmark data set as a pool/test split.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    data_dir : str or os.PathLike or None
        Directory holding the data sets read from disk, in torchvision's layout:
        ``MNIST/raw/*-ubyte[.gz]``, ``parkinsons/parkinsons_updrs.data``,
        ``cifar-10-batches-py/`` and ``train_32x32.mat`` / ``test_32x32.mat`` directly in
        ``data_dir`` (``/work/shared/data`` here). Required for those sets; ignored for the
        scikit-learn and synthetic ones.
    redundancy : int, default 1
        For ``digits-redundant`` only: how many exact copies of each pool row the pool holds
        (``1`` gives plain ``digits``). Any other data set accepts only ``1``.
    test_size : float or int, default 0.3
        Test fraction (float in ``(0, 1)``) or number of test rows (int) for the scikit-learn,
        synthetic and Parkinsons sets; ignored for MNIST, CIFAR-10 and SVHN, which come with
        their own test split.
    random_state : int or None, default 0
        Seeds the split, the shuffle of ``digits-redundant`` and the ``max_pool`` /
        ``max_test`` subsampling. ``None`` is not reproducible.
    download : bool, default False
        Let torchvision download missing CIFAR-10 / SVHN files (needs a network; the
        downloads are md5 checked). MNIST and Parkinsons are never downloaded. With ``False``
        nothing is downloaded and local files are trusted as they are.
    max_pool, max_test : int or None, default None
        Keep at most this many pool / test rows: a seeded random subset, in the original
        order. For ``digits-redundant`` ``max_pool`` caps the final pool, keeping
        ``max_pool // redundancy`` distinct rows so each still appears ``redundancy`` times.

    Returns
    -------
    ActiveLearningData

    Raises
    ------
    ValueError
        Unknown ``name``; ``redundancy``, ``test_size``, ``max_pool`` or ``max_test`` out of
        range; ``data_dir`` missing for a torchvision set.
    FileNotFoundError
        ``data_dir`` or the data set's files do not exist (and ``download`` is False).

    Examples
    --------
    >>> data = load_dataset("wine", random_state=1)
    >>> data.X_pool.shape[1:], data.n_classes, data.module
    ((13,), 3, 'mlp')
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    redundancy = _check_redundancy(name, redundancy)
    max_pool = _check_max(max_pool, "max_pool")
    max_test = _check_max(max_test, "max_test")
    if random_state is not None and (isinstance(random_state, bool)
                                     or not isinstance(random_state, numbers.Integral)
                                     or not 0 <= random_state < 2**32):
        raise ValueError(f"random_state must be None or an int in [0, 2**32), "
                         f"got {random_state!r}")
    if name in _SKLEARN_DATASETS:
        _check_test_size(test_size)
        return _load_sklearn(name, redundancy=redundancy, test_size=test_size,
                             random_state=random_state, max_pool=max_pool, max_test=max_test)
    if name in ("mnist", "mnist-cnn", "parkinsons") and download:
        raise ValueError(f"{name!r} is never downloaded: pass data_dir with its files "
                         "(download=True applies to cifar10 and svhn only)")
    root = _check_data_dir(name, data_dir, download)
    if name == "parkinsons":
        _check_test_size(test_size)
        return _load_parkinsons(root, test_size=test_size, random_state=random_state,
                                max_pool=max_pool, max_test=max_test)
    if name in _MNIST_SHAPES:
        return _load_mnist(root, name=name, random_state=random_state, max_pool=max_pool,
                           max_test=max_test)
    loader = {"cifar10": _load_cifar10, "svhn": _load_svhn}[name]
    return loader(root, download=download, random_state=random_state, max_pool=max_pool,
                  max_test=max_test)


# --------------------------------------------------------------------------- argument checks


def _check_redundancy(name, redundancy):
    if isinstance(redundancy, bool) or not isinstance(redundancy, numbers.Integral):
        raise ValueError(f"redundancy must be an int >= 1, got {redundancy!r}")
    redundancy = int(redundancy)
    if redundancy < 1:
        raise ValueError(f"redundancy must be an int >= 1, got {redundancy}")
    if redundancy != 1 and name != "digits-redundant":
        raise ValueError(f"redundancy={redundancy} applies only to 'digits-redundant'; "
                         f"{name!r} accepts only redundancy=1")
    return redundancy


def _check_max(value, what):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be None or an int >= 1, got {value!r}")
    return int(value)


def _check_test_size(test_size):
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise ValueError(f"test_size must be a float in (0, 1) or an int >= 1, got {test_size!r}")
    if isinstance(test_size, numbers.Integral):
        if test_size < 1:
            raise ValueError(f"test_size as an int must be >= 1, got {test_size}")
    elif not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size as a float must lie in (0, 1), got {test_size}")


def _check_data_dir(name, data_dir, download):
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
    if name in _MNIST_SHAPES:
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


# --------------------------------------------------------------------------- helpers


def _subsample(n, limit, rng):
    """Row indices of a seeded random subset of at most ``limit`` of ``n`` rows, sorted."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _make(name, task, X_pool, y_pool, X_test, y_test, n_classes, module):
    label_dtype = np.int64 if task == "classification" else np.float32
    X_pool = np.ascontiguousarray(X_pool, dtype=np.float32)
    X_test = np.ascontiguousarray(X_test, dtype=np.float32)
    return ActiveLearningData(
        name=name, task=task, X_pool=X_pool, y_pool=np.asarray(y_pool, dtype=label_dtype),
        X_test=X_test, y_test=np.asarray(y_test, dtype=label_dtype), n_classes=n_classes,
        module=module, feature_shape=X_pool.shape[1:])


# --------------------------------------------------------------------------- scikit-learn sets


def _load_sklearn(name, *, redundancy, test_size, random_state, max_pool, max_test):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    base = "digits" if name == "digits-redundant" else name
    loader = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer,
              "wine": datasets.load_wine}.get(base)
    if base == "manyclass":
        X, y = make_manyclass()
        task = "classification"
    elif base == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True, scaled=False)
        task = "regression"
    else:
        X, y = loader(return_X_y=True)
        task = "classification"
    X = np.asarray(X, dtype=np.float64)
    stratify = y if task == "classification" else None
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=stratify)

    if base == "digits":
        X_pool, X_test = X_pool / 16.0, X_test / 16.0
    else:
        scaler = StandardScaler().fit(X_pool)
        X_pool, X_test = scaler.transform(X_pool), scaler.transform(X_test)

    # Separate streams so that max_test does not change which pool rows are kept.
    pool_rng, test_rng, shuffle_rng = (np.random.default_rng(s) for s in
                                       np.random.SeedSequence(random_state).spawn(3))
    if max_pool is not None and max_pool < redundancy:
        raise ValueError(f"max_pool={max_pool} is smaller than redundancy={redundancy}: the "
                         "pool could not hold one full set of copies")
    keep_pool = None if max_pool is None else max_pool // redundancy
    rows = _subsample(len(X_pool), keep_pool, pool_rng)
    X_pool, y_pool = X_pool[rows], y_pool[rows]
    rows = _subsample(len(X_test), max_test, test_rng)
    X_test, y_test = X_test[rows], y_test[rows]

    if redundancy > 1:
        # Exact copies, then a seeded shuffle so copies of a row are not adjacent.
        order = shuffle_rng.permutation(len(X_pool) * redundancy)
        X_pool = np.repeat(X_pool, redundancy, axis=0)[order]
        y_pool = np.repeat(y_pool, redundancy, axis=0)[order]

    n_classes = int(len(np.unique(y))) if task == "classification" else None
    return _make(name, task, X_pool, y_pool, X_test, y_test, n_classes, "mlp")


# --------------------------------------------------------------------------- torchvision sets


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


def _load_mnist(root, *, name, random_state, max_pool, max_test):
    pool_rng, test_rng = _split_rngs(random_state)
    parts = []
    for split, limit, rng in (("train", max_pool, pool_rng), ("t10k", max_test, test_rng)):
        images = read_idx(_mnist_file(root, os.path.join("MNIST", "raw",
                                                         f"{split}-images-idx3-ubyte")))
        labels = read_idx(_mnist_file(root, os.path.join("MNIST", "raw",
                                                         f"{split}-labels-idx1-ubyte")))
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f"MNIST {split}: {images.shape} images for {labels.shape} labels")
        rows = _subsample(len(images), limit, rng)
        X = images[rows].reshape(len(rows), *_MNIST_SHAPES[name]).astype(np.float32)
        parts += [X / np.float32(255.0), labels[rows].astype(np.int64)]
    module = "cnn" if name == "mnist-cnn" else "mlp"
    return _make(name, "classification", parts[0], parts[1], parts[2], parts[3], 10, module)


def make_manyclass():
    """The fixed synthetic 26-class data set (X float64 (20000, 40), y int in 0..25)."""
    from sklearn.datasets import make_classification

    return make_classification(n_samples=20000, n_features=40, n_informative=30,
                               n_redundant=0, n_classes=26, n_clusters_per_class=1,
                               class_sep=1.5, flip_y=0.0, random_state=7)


def _load_parkinsons(root, *, test_size, random_state, max_pool, max_test):
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
    rows = _subsample(len(X_pool), max_pool, pool_rng)
    X_pool, y_pool = X_pool[rows], y_pool[rows]
    rows = _subsample(len(X_test), max_test, test_rng)
    return _make("parkinsons", "regression", X_pool, y_pool, X_test[rows], y_test[rows], None,
                 "mlp")


def _load_cifar10(root, *, download, random_state, max_pool, max_test):
    from torchvision.datasets import CIFAR10

    cls = CIFAR10 if download else _trusting(CIFAR10)
    pool_rng, test_rng = _split_rngs(random_state)
    parts = []
    for train, limit, rng in ((True, max_pool, pool_rng), (False, max_test, test_rng)):
        ds = cls(str(root), train=train, download=download)
        images, labels = np.asarray(ds.data), np.asarray(ds.targets)  # images are NHWC uint8
        rows = _subsample(len(images), limit, rng)
        X = _normalize_nchw(images[rows].transpose(0, 3, 1, 2), CIFAR10_MEAN, CIFAR10_STD)
        parts += [X, labels[rows]]
    return _make("cifar10", "classification", parts[0], parts[1], parts[2], parts[3], 10,
                 "resnet18")


def _load_svhn(root, *, download, random_state, max_pool, max_test):
    from torchvision.datasets import SVHN

    cls = SVHN if download else _trusting(SVHN)
    pool_rng, test_rng = _split_rngs(random_state)
    parts = []
    for split, limit, rng in (("train", max_pool, pool_rng), ("test", max_test, test_rng)):
        ds = cls(str(root), split=split, download=download)
        # torchvision already maps label 10 (digit 0) to 0 and transposes to NCHW uint8.
        images, labels = np.asarray(ds.data), np.asarray(ds.labels).reshape(-1)
        rows = _subsample(len(images), limit, rng)
        X = _normalize_nchw(images[rows], SVHN_MEAN, SVHN_STD)
        parts += [X, labels[rows]]
    return _make("svhn", "classification", parts[0], parts[1], parts[2], parts[3], 10,
                 "resnet18")
