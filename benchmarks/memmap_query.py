"""One query per strategy on a float64 memmap pool: time and memory above the query's start.

    python -m benchmarks.memmap_query --rows 1000000 --strategies ally,ally-paper,badge,coreset

Writes the memmap once (``--path``), then measures each strategy in a fresh process:
it fits a PDCLNet (default MLP, embedding 256) on ``--labeled`` random rows, reads its
resident memory, and times one query of b = ``--budget``. Reported: wall time, peak RSS
above the query's start (``/proc/self/clear_refs``; it includes the pages of the mapped
file the query read, up to the file's size: page cache the kernel may drop at any time)
and peak anonymous memory above the start (``RssAnon`` sampled every 20 ms: what the
query itself allocated). ``ally`` is the default rule, ``ally-paper`` ``method="paper"``.
Writes ``memmap_query.csv`` and ``memmap_query.md`` to ``--out``; ``--threads`` torch
threads (default 1). Run it with ``PYTHONPATH`` pointing at another checkout to measure
that version of ``modal_ally``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.harness import cli
from benchmarks.harness.reporting import markdown_table, write_atomic, write_csv

STRATEGIES = ("ally", "ally-paper", "badge", "coreset")
FIELDS = ("strategy", "rows", "features", "budget", "threads", "seconds",
          "peak_rss_above_start_mib", "peak_anon_above_start_mib", "mapped_file_mib",
          "load")


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


def _strategy(name):
    from functools import partial

    import modal_ally as ma

    return {"ally": ma.ally_query_strategy,
            "ally-paper": partial(ma.ally_query_strategy, method="paper"),
            "badge": ma.badge_query_strategy,
            "coreset": ma.coreset_query_strategy}[name]


def measure(name: str, args) -> dict:
    """One query of strategy ``name`` in this (fresh) process."""
    import torch

    from benchmarks.harness.memory import AnonPeak, load_average
    from modal_ally import PDCLNet

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    pool = np.load(args.path, mmap_mode="r")
    rng = np.random.RandomState(1)
    X = rng.randn(args.labeled, pool.shape[1]).astype(np.float32)
    net = PDCLNet(max_epochs=2, random_state=0).fit(X, rng.randint(10, size=args.labeled))
    strategy = _strategy(name)
    Path("/proc/self/clear_refs").write_text("5")
    start_kib = _kib("VmRSS")
    with AnonPeak() as anon:
        start = time.perf_counter()
        strategy(net, pool, args.budget, random_state=0)
        seconds = time.perf_counter() - start
    return {"strategy": name, "rows": pool.shape[0], "features": pool.shape[1],
            "budget": args.budget, "threads": args.threads, "seconds": round(seconds, 2),
            "peak_rss_above_start_mib": round((_kib("VmHWM") - start_kib) / 1024),
            "peak_anon_above_start_mib": round((anon.peak - anon.base) / 1024),
            "mapped_file_mib": round(pool.nbytes / 2**20), "load": load_average()}


def _child(name, args, queue):
    queue.put(measure(name, args))


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--labeled", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--path", default="/tmp/modal_ally_memmap_pool.npy")
    parser.add_argument("--out", default="docs/results/scale")
    args = parser.parse_args(argv)
    names = [n for n in args.strategies.split(",") if n]
    unknown = set(names) - set(STRATEGIES)
    if unknown:
        parser.error(f"unknown strategies {sorted(unknown)}; choose from {STRATEGIES}")
    pool = _write_pool(args.path, args.rows, args.features)
    if pool.shape != (args.rows, args.features):
        parser.error(f"{args.path} holds {pool.shape}, not ({args.rows}, {args.features})")
    rows = cli.run_each_in_a_process(names, _child, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "memmap_query.csv", FIELDS, rows)
    write_atomic(out / "memmap_query.md", "\n".join(
        [f"# One query on a float64 memmap of {args.rows} x {args.features}, b = "
         f"{args.budget} ({args.threads} torch thread(s))", ""]
        + markdown_table(["strategy", "seconds", "peak RSS above start (MiB, incl. "
                          "mapped file pages)", "peak anonymous memory above start (MiB)",
                          "mapped file (MiB)", "load average"],
                         [[r["strategy"], r["seconds"], r["peak_rss_above_start_mib"],
                           r["peak_anon_above_start_mib"], r["mapped_file_mib"], r["load"]]
                          for r in rows])) + "\n")
    return rows


if __name__ == "__main__":
    main()
