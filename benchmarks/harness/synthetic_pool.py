"""The synthetic pool of ``benchmarks.scale``: ten Gaussian classes, generated piece by
piece from fixed seeds (the data do not depend on the chunking), as numpy rows, a Dask
array generated where it is used, a zarr array or a memmap written once, and the PDCLNet
fitted on 1,000 labeled rows of the same classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["GEN_ROWS", "N_CLASSES", "dask_pool", "fitted_net", "labeled_rows", "make_rows",
           "write_memmap", "write_zarr"]

N_CLASSES = 10
GEN_ROWS = 50_000  # rows generated per piece: the data do not depend on the chunking


def make_rows(start: int, stop: int, *, n_features: int, seed: int = 0) -> np.ndarray:
    """Rows ``start:stop`` of the synthetic pool (Gaussian classes, float32)."""
    centers = 2.0 * np.random.default_rng(12345).standard_normal(
        (N_CLASSES, n_features), dtype=np.float32)
    parts = []
    for piece in range(start // GEN_ROWS, (stop - 1) // GEN_ROWS + 1):
        rng = np.random.default_rng([seed, piece])
        y = rng.integers(N_CLASSES, size=GEN_ROWS)
        X = rng.standard_normal((GEN_ROWS, n_features), dtype=np.float32)
        X += centers[y]
        lo, hi = max(start, piece * GEN_ROWS), min(stop, (piece + 1) * GEN_ROWS)
        parts.append(X[lo - piece * GEN_ROWS:hi - piece * GEN_ROWS])
    return np.concatenate(parts)


def labeled_rows(n_rows: int, *, n_features: int):
    centers = 2.0 * np.random.default_rng(12345).standard_normal(
        (N_CLASSES, n_features), dtype=np.float32)
    rng = np.random.default_rng(999)
    y = rng.integers(N_CLASSES, size=n_rows)
    return (rng.standard_normal((n_rows, n_features), dtype=np.float32) + centers[y]), y


def dask_pool(n_rows: int, *, chunk_rows: int, n_features: int):
    """The synthetic pool as a Dask array, each chunk generated where it is used."""
    import dask
    import dask.array as da

    parts = []
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        rows = dask.delayed(make_rows, pure=True)(start, stop, n_features=n_features)
        parts.append(da.from_delayed(rows, shape=(stop - start, n_features),
                                     dtype=np.float32))
    return da.concatenate(parts)


def write_zarr(pool, path: Path):
    """Write the pool once to an uncompressed zarr array; the pool read back from it."""
    import dask.array as da
    import zarr

    store = zarr.create_array(store=str(path), shape=pool.shape, dtype=pool.dtype,
                              chunks=(pool.chunks[0][0], pool.shape[1]), compressors=None,
                              overwrite=True)
    da.store(pool, store, lock=False)
    return da.from_zarr(str(path))


def write_memmap(n_rows: int, path: Path, *, n_features: int):
    pool = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                     shape=(n_rows, n_features))
    for start in range(0, n_rows, GEN_ROWS):
        stop = min(start + GEN_ROWS, n_rows)
        pool[start:stop] = make_rows(start, stop, n_features=n_features)
    pool.flush()
    del pool
    return np.load(path, mmap_mode="r")


def fitted_net(*, n_features: int, epochs: int):
    from modal_ally import PDCLNet

    X, y = labeled_rows(1000, n_features=n_features)
    net = PDCLNet(module__hidden_units=(256, 256), max_epochs=epochs, random_state=0)
    return net.fit(X, y)
