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

import numpy as np

from benchmarks.harness.data_files import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    MNIST_SHAPES,
    PARKINSONS_FEATURES,
    PARKINSONS_TARGET,
    SVHN_MEAN,
    SVHN_STD,
    check_data_dir,
    load_cifar10,
    load_mnist,
    load_parkinsons,
    load_svhn,
    read_idx,
)
from benchmarks.harness.data_split import ActiveLearningData, make_data, subsample

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "DATASETS", "PARKINSONS_FEATURES",
           "PARKINSONS_TARGET", "SVHN_MEAN", "SVHN_STD", "ActiveLearningData", "load_dataset",
           "make_manyclass", "read_idx"]

DATASETS = ("digits", "breast_cancer", "wine", "diabetes", "digits-redundant", "manyclass",
            "parkinsons", "mnist", "mnist-cnn", "cifar10", "svhn")

_SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "diabetes", "digits-redundant",
                     "manyclass")
_FILE_DATASETS = ("parkinsons", "mnist", "mnist-cnn", "cifar10", "svhn")


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
    root = check_data_dir(name, data_dir, download)
    if name == "parkinsons":
        _check_test_size(test_size)
        return load_parkinsons(root, test_size=test_size, random_state=random_state,
                                max_pool=max_pool, max_test=max_test)
    if name in MNIST_SHAPES:
        return load_mnist(root, name=name, random_state=random_state, max_pool=max_pool,
                           max_test=max_test)
    loader = {"cifar10": load_cifar10, "svhn": load_svhn}[name]
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
    rows = subsample(len(X_pool), keep_pool, pool_rng)
    X_pool, y_pool = X_pool[rows], y_pool[rows]
    rows = subsample(len(X_test), max_test, test_rng)
    X_test, y_test = X_test[rows], y_test[rows]

    if redundancy > 1:
        # Exact copies, then a seeded shuffle so copies of a row are not adjacent.
        order = shuffle_rng.permutation(len(X_pool) * redundancy)
        X_pool = np.repeat(X_pool, redundancy, axis=0)[order]
        y_pool = np.repeat(y_pool, redundancy, axis=0)[order]

    n_classes = int(len(np.unique(y))) if task == "classification" else None
    return make_data(name, task, X_pool, y_pool, X_test, y_test, n_classes, "mlp")


def make_manyclass():
    """The fixed synthetic 26-class data set (X float64 (20000, 40), y int in 0..25)."""
    from sklearn.datasets import make_classification

    return make_classification(n_samples=20000, n_features=40, n_informative=30,
                               n_redundant=0, n_classes=26, n_clusters_per_class=1,
                               class_sep=1.5, flip_y=0.0, random_state=7)
