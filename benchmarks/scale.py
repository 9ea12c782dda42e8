"""Query strategies on pools past memory: Dask arrays on a LocalCluster, and memmaps.

Parts (``--parts``, default all):

``dask``
    Synthetic pools of ``--features`` (256) features and ``--sizes`` rows (default
    10^5, 10^6, 10^7), ten Gaussian classes (the data of ``benchmarks/speed.py``),
    generated chunk by chunk on the workers; pools of ``--zarr-from`` rows or more
    (10^7: about 10 GB) are first written once to disk as zarr (``--data-dir``) and
    read back from there, and removed afterwards unless ``--keep``. A LocalCluster of
    ``--workers`` processes (1 thread each, ``--worker-memory`` limit) runs one
    ``learner.query(pool, n_instances=--budget)`` of every strategy per size: query
    time, rows per second, peak resident memory of each worker and of the client.
    Without ``--persist`` every read of a block generates it again (the clustering or
    projection sample and the pass each pay it); with ``--persist`` the pools below
    ``--zarr-from`` are generated once and kept in the workers' memory. ``--malloc-trim
    unset`` starts the workers without Dask's ``MALLOC_TRIM_THRESHOLD_=65536``.
    At the sizes in ``--compare`` (10^6) the same pool, gathered into one numpy array,
    runs through the in-memory path in this process (``--workers`` torch threads):
    ``ratio`` = dask time / in-memory time.
``memmap``
    ``--memmap-sizes`` rows written to a float32 ``numpy.memmap`` and queried through
    the single-machine path (``--memmap-strategies``; a name ending in ``-dask``
    queries the same file wrapped by ``dask.array.from_array``, on dask's default
    threaded scheduler): the peak anonymous memory (``RssAnon``, sampled every 20 ms;
    the mapped file's pages are not anonymous) above the baseline, beside the size
    of the file.
``quality``
    ALLY's default rule, BADGE and Core-Set on a Dask pool select in two rounds (per
    block, then on the union; see ``modal_ally.distributed._select``). On a pool of
    ``--quality-rows`` rows in ``--quality-blocks`` blocks, per seed: the default rule's
    objective (draw weight times squared gradient-space distance to the nearest pick,
    in the exact space) of its Dask batch and of its in-memory (projected) batch over
    the mean of the exact in-memory rule's batches (full embedding space); BADGE's
    k-means cost in gradient space and Core-Set's covering radius of the Dask batch
    over the exact batch; random batches as a reference.

``block``
    CPU seconds of one block's work (``--chunk-rows`` rows) per strategy in one
    process with one torch thread: rows per CPU-second, a worker's throughput on an
    idle core whatever the machine's load (the projection of docs/scaling.md's "Scaling
    out").

Outputs in ``--out`` (default ``docs/results/scale``): ``scale.csv``/``scale.md``,
``memmap.csv``/``memmap.md``, ``quality.csv``/``quality.md`` and ``block.csv``/``block.md``.
The machine's load average is recorded with every row: timings depend on it.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import time
import warnings
from functools import partial
from pathlib import Path

from benchmarks.harness.memory import AnonPeak, load_average, mib, read_peak, reset_peak
from benchmarks.harness.scale_quality import run_quality_part
from benchmarks.harness.synthetic_pool import (
    dask_pool,
    fitted_net,
    make_rows,
    write_memmap,
    write_zarr,
)

STRATEGY_NAMES = ("ally", "ally-paper", "ally-redundancy", "badge", "coreset", "random")


# ============================================================================ data
def strategies():
    import modal_ally as ma

    return {"ally": ma.ally_query_strategy,
            "ally-paper": partial(ma.ally_query_strategy, method="paper"),
            "ally-redundancy": ma.ally_redundancy_aware_query_strategy,
            "badge": ma.badge_query_strategy, "coreset": ma.coreset_query_strategy,
            "random": ma.random_query_strategy}


# ============================================================================ dask part
def start_cluster(args):
    import dask
    from distributed import Client, LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    if getattr(args, "malloc_trim", "dask") == "unset":
        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in every worker; glibc then
        # keeps its mmap threshold fixed at 128 KiB, so every chunk-sized tensor is a
        # fresh mapping, page-faulted in and unmapped again (docs/scaling.md)
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    dask.config.set({"distributed.nanny.pre-spawn-environ": environ})
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           memory_limit=args.worker_memory, dashboard_address=None)
    client = Client(cluster)
    client.run(_one_torch_thread)
    return cluster, client


def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


def timed_queries(learner, pool, budget: int, repeats: int) -> dict:
    """``repeats`` queries of ``budget`` rows: the best time (``seconds``, and the rows
    per second it gives) and the first one's (``first_seconds``: on Dask it also pays the
    workers' first import of the package and the first transfer of the net)."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        learner.query(pool, n_instances=budget)
        times.append(time.perf_counter() - start)
    seconds = min(times)
    return {"seconds": round(seconds, 2), "first_seconds": round(times[0], 2),
            "rows_per_s": round(pool.shape[0] / seconds)}


def measure_dask(client, learner, pool, budget: int, repeats: int = 1) -> dict:
    """:func:`timed_queries`, and the peaks over all of them."""
    bases = client.run(reset_peak)
    client_base = reset_peak()
    row = timed_queries(learner, pool, budget, repeats)
    peaks = client.run(read_peak)
    return {**row,
            "worker_peak_mib": " / ".join(str(mib(peaks[w])) for w in sorted(peaks)),
            "worker_base_mib": " / ".join(str(mib(bases[w])) for w in sorted(bases)),
            "client_peak_mib": mib(read_peak()), "client_above_base_mib":
                mib(read_peak() - client_base)}


def measure_in_memory(learner, X_pool, budget: int, repeats: int = 1) -> dict:
    client_base = reset_peak()
    row = timed_queries(learner, X_pool, budget, repeats)
    return {**row, "client_peak_mib": mib(read_peak()),
            "client_above_base_mib": mib(read_peak() - client_base)}


def run_dask_part(args, net, learners) -> list[dict]:
    import torch

    cluster, client = start_cluster(args)
    rows = []
    try:
        for n_rows in args.sizes:
            pool = dask_pool(n_rows, chunk_rows=args.chunk_rows, n_features=args.features)
            source, path, write_s = "generated on the workers", None, None
            if args.persist and n_rows < args.zarr_from:
                from distributed import wait

                pool = pool.persist()
                wait(pool)
                source = "persisted in the workers' memory"
            elif n_rows >= args.zarr_from:
                path = Path(args.data_dir) / f"pool_{n_rows}.zarr"
                start = time.perf_counter()
                pool = write_zarr(pool, path)
                write_s = round(time.perf_counter() - start, 1)
                source = f"zarr on disk (written in {write_s} s)"
            for name in args.strategies:
                row = {"part": "dask", "n_rows": n_rows, "strategy": name,
                       "path": f"dask, {args.workers} workers"
                       + (", malloc trim unset" if args.malloc_trim == "unset" else ""),
                       "source": source,
                       "load": load_average()}
                row.update(measure_dask(client, learners[name], pool, args.budget,
                                        args.repeats))
                print(row, flush=True)
                rows.append(row)
                args.save(rows)
            if n_rows in args.compare:
                rows += compare_in_memory(args, pool, learners, rows, torch)
                args.save(rows)
            if path is not None and not args.keep:
                shutil.rmtree(path, ignore_errors=True)
    finally:
        client.close()
        cluster.close()
    return rows


def compare_in_memory(args, pool, learners, rows, torch) -> list[dict]:
    # a persisted pool lives on the workers: gathered through the client
    X_pool = pool.compute() if args.persist else pool.compute(scheduler="threads")
    torch.set_num_threads(args.workers)
    out = []
    for name in args.strategies:
        row = {"part": "in-memory", "n_rows": X_pool.shape[0], "strategy": name,
               "path": f"numpy, {args.workers} torch threads", "source": "numpy array",
               "load": load_average()}
        row.update(measure_in_memory(learners[name], X_pool, args.budget, args.repeats))
        dask_row = next(r for r in rows if r["part"] == "dask" and r["strategy"] == name
                        and r["n_rows"] == X_pool.shape[0])
        dask_row["ratio"] = row["ratio"] = round(dask_row["seconds"] / row["seconds"], 2)
        print(row, flush=True)
        out.append(row)
    torch.set_num_threads(1)
    del X_pool
    return out


# ============================================================================ memmap part
def run_memmap_part(args, learners) -> list[dict]:
    rows = []
    for n_rows in args.memmap_sizes:
        path = Path(args.data_dir) / f"pool_{n_rows}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        X_pool = write_memmap(n_rows, path, n_features=args.features)
        write_s = round(time.perf_counter() - start, 1)
        for name in args.memmap_strategies:
            row = {"part": "memmap", "n_rows": n_rows, "strategy": name,
                   "file_mib": mib(path.stat().st_size / 1024), "write_s": write_s,
                   "load": load_average()}
            pool = X_pool
            if name.endswith("-dask"):  # the same file as a Dask array, default scheduler
                import dask.array as da

                name = name[:-len("-dask")]
                pool = da.from_array(X_pool, chunks=(args.chunk_rows, X_pool.shape[1]))
                row["strategy"] = f"{name} (Dask array, threads)"
            try:
                with AnonPeak() as anon:
                    start = time.perf_counter()
                    learners[name].query(pool, n_instances=args.budget)
                    row["seconds"] = round(time.perf_counter() - start, 2)
                row["anon_above_base_mib"] = mib(anon.peak - anon.base)
                row["status"] = "ok"
            except MemoryError as exc:
                row["status"] = f"MemoryError: {exc}"
            print(row, flush=True)
            rows.append(row)
        del X_pool
        if not args.keep:
            path.unlink()
    return rows


# ============================================================================ block part
def run_block_part(args, net) -> list[dict]:
    """CPU seconds of one block's work per strategy, in this process (one torch
    thread): rows per CPU-second is a worker's throughput on an idle core, whatever
    the machine's load; with the call's system time and minor page faults (run it with
    ``MALLOC_TRIM_THRESHOLD_=65536`` for a Dask worker's allocator, and with
    ``MODAL_ALLY_STEADY_HEAP=0`` besides for the block tasks without the steady heap)."""
    import dask.array as da

    from modal_ally._allocator import steady_heap_applies
    from modal_ally.distributed import _ally as _dask_ally
    from modal_ally.distributed import _baselines as _dask_baselines

    pool = da.from_array(make_rows(0, args.chunk_rows, n_features=args.features),
                         chunks=args.chunk_rows)
    targets = {"ally": (_dask_baselines, "seeding_block"),
               "ally-paper": (_dask_ally, "ally_block"),
               "badge": (_dask_baselines, "seeding_block"),
               "coreset": (_dask_baselines, "coreset_block")}
    calls, rows = {}, []
    for name, (module, attribute) in targets.items():
        original = getattr(module, attribute)

        def recorder(*a, _name=name, _original=original, **k):
            calls[_name] = (_original, a, k)
            return _original(*a, **k)

        setattr(module, attribute, recorder)
        try:
            strategies()[name](net, pool, args.budget, random_state=0)
        finally:
            setattr(module, attribute, original)
        function, a, k = calls[name]
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
        function(*a, **k)
        cpu = time.process_time() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        rows.append({"part": "block", "strategy": name, "block_rows": args.chunk_rows,
                     "budget": args.budget, "cpu_s": round(cpu, 3),
                     "rows_per_cpu_s": round(args.chunk_rows / cpu),
                     "system_s": round(after.ru_stime - before.ru_stime, 3),
                     "minor_faults": after.ru_minflt - before.ru_minflt,
                     "malloc_trim_threshold": os.environ.get("MALLOC_TRIM_THRESHOLD_", "unset"),
                     "steady_heap": steady_heap_applies(), "load": load_average()})
        print(rows[-1], flush=True)
    return rows


# ============================================================================ output
def write_table(rows: list[dict], out: Path, name: str) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(out / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    lines += ["| " + " | ".join(str(row.get(f, "")) for f in fields) + " |" for row in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def _sizes(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="dask,memmap,quality,block")
    parser.add_argument("--sizes", type=_sizes, default=_sizes("1e5,1e6,1e7"))
    parser.add_argument("--compare", type=_sizes, default=_sizes("1e6"))
    parser.add_argument("--memmap-sizes", type=_sizes, default=_sizes("1e6,1e7"))
    parser.add_argument("--memmap-strategies", default="ally,random")
    parser.add_argument("--strategies", default=",".join(STRATEGY_NAMES))
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="2GiB")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=1,
                        help="queries per strategy and pool (Dask and in memory): the "
                             "best is `seconds`, the first `first_seconds`")
    parser.add_argument("--malloc-trim", choices=("dask", "unset"), default="dask",
                        help="the workers' MALLOC_TRIM_THRESHOLD_: Dask's default "
                             "(65536) or unset (glibc's adaptive thresholds)")
    parser.add_argument("--zarr-from", type=int, default=10**7)
    parser.add_argument("--data-dir", default="/tmp/modal_ally_scale")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--persist", action="store_true",
                        help="generate pools below --zarr-from once and keep them in the "
                             "workers' memory (a pool read as fast as the in-memory one)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quality-rows", type=int, default=20_000)
    parser.add_argument("--quality-blocks", type=int, default=8)
    parser.add_argument("--quality-seeds", type=int, default=5)
    parser.add_argument("--out", default="docs/results/scale")
    args = parser.parse_args(argv)
    args.parts = args.parts.split(",")
    args.strategies = args.strategies.split(",")
    args.memmap_strategies = args.memmap_strategies.split(",")
    return args


def main(argv=None) -> None:
    import torch
    from modAL.models import ActiveLearner

    args = parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = fitted_net(n_features=args.features, epochs=args.epochs)
    learners = {name: ActiveLearner(estimator=net, query_strategy=strategy)
                for name, strategy in strategies().items()}
    if "quality" in args.parts:
        write_table(run_quality_part(args, net), out, "quality")
    if "block" in args.parts:
        write_table(run_block_part(args, net), out, "block")
    if "memmap" in args.parts:
        write_table(run_memmap_part(args, learners), out, "memmap")
    if "dask" in args.parts:
        args.save = lambda rows: write_table(rows, out, "scale")  # after every row
        write_table(run_dask_part(args, net, learners), out, "scale")


if __name__ == "__main__":
    main()
