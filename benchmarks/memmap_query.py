"""One ALLY query on a float64 memmap pool: time and memory above the pool's storage.

    python -m benchmarks.memmap_query --rows 1000000 --label after

Writes the memmap once (``--path``), fits a PDCLNet (default MLP) on ``--labeled``
random rows, then measures one ``ally_query_strategy`` call, b = ``--budget``: wall
time, peak RSS above the start of the query (``/proc/self/clear_refs``; includes the
mapped pages read) and the peak of numpy allocations (tracemalloc), each in its own
query. Appends a row to ``--out`` (CSV). Run it with ``PYTHONPATH`` pointing at another
checkout to measure that version of ``modal_ally``.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import torch


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _write_pool(path: str, rows: int, features: int) -> np.ndarray:
    if not os.path.exists(path):
        pool = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64,
                                         shape=(rows, features))
        rng = np.random.RandomState(0)
        for start in range(0, rows, 100_000):
            pool[start:start + 100_000] = rng.randn(min(100_000, rows - start), features)
        pool.flush()
        del pool
    return np.load(path, mmap_mode="r")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--labeled", type=int, default=1000)
    parser.add_argument("--path", default="/tmp/modal_ally_memmap_pool.npy")
    parser.add_argument("--label", default="current")
    parser.add_argument("--out", default="docs/results/core/memmap_query.csv")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from modal_ally import PDCLNet, ally_query_strategy

    pool = _write_pool(args.path, args.rows, args.features)
    rng = np.random.RandomState(1)
    X = rng.randn(args.labeled, args.features).astype(np.float32)
    net = PDCLNet(max_epochs=2, random_state=0).fit(X, rng.randint(10, size=args.labeled))
    Path("/proc/self/clear_refs").write_text("5")
    start_kib, start = _kib("VmRSS"), time.perf_counter()
    ally_query_strategy(net, pool, args.budget, random_state=0)
    row = {"label": args.label, "rows": args.rows, "features": args.features,
           "budget": args.budget, "seconds": round(time.perf_counter() - start, 2),
           "peak_rss_above_start_mib": round((_kib("VmHWM") - start_kib) / 1024),
           "mapped_file_mib": round(pool.nbytes / 2**20)}
    tracemalloc.start()
    ally_query_strategy(net, pool, args.budget, random_state=0)
    row["numpy_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(row)
    return row


if __name__ == "__main__":
    main()
