"""One query per strategy on a wide scipy.sparse pool: time and memory above the start.

    python -m benchmarks.sparse_pool --threads 1

The pool is ``--rows`` x ``--features`` CSR (default 10^5 x 10^5, ``--density`` 0.1 %:
100 stored values a row, columns drawn uniformly, positive values, rows scaled to unit
norm as TfidfVectorizer's; float64, as scikit-learn's vectorizers emit; seeded by
``--seed``). A PDCLNet (default MLP, 2 x 256) is fitted once on ``--labeled`` more rows of
the same kind, labeled by a random linear teacher over ``--classes`` classes; the pool
and the fitted net are written to ``--workdir``. Each strategy then runs in a fresh
process: it loads the pool and the net, queries 200 pool rows once (so that torch's
one-time set-up is not counted), resets the resident-set high-water mark
(``/proc/self/clear_refs``), reads its resident set, and times one query of
b = ``--budget`` on the whole pool. Reported: wall time, peak resident set above the
query's start (VmHWM), peak anonymous memory above the start (RssAnon sampled every
20 ms, a check on the first), and whether the picks are ``b`` unique positions;
``forward`` is one ``predict_proba`` pass over the pool for scale. ``ally`` is the
default rule, ``ally-paper`` ``method="paper"``. ``--format csc`` hands the strategies
the same pool as CSC (a workdir written with the same settings is reused). Writes
``<--name>.csv`` and ``<--name>.md`` (default ``sparse_pool``) to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.harness import cli
from benchmarks.harness.reporting import markdown_table, write_atomic, write_csv

STRATEGIES = ("forward", "ally", "ally-paper", "ally-redundancy", "badge", "coreset",
              "random")
FIELDS = ("strategy", "format", "rows", "features", "stored_values", "budget", "threads",
          "seconds", "peak_rss_above_start_mib", "peak_anon_above_start_mib",
          "hwm_reset", "unique_picks", "start_rss_mib", "load")
LIMIT_MIB = 500


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def sparse_rows(n_rows: int, n_features: int, density: float, rng):
    """``n_rows`` CSR rows with about ``density * n_features`` stored values each
    (uniform columns, duplicates summed), positive values, unit-norm rows, float64."""
    import scipy.sparse as sp

    per_row = max(1, round(density * n_features))
    columns = rng.integers(0, n_features, size=n_rows * per_row, dtype=np.int32)
    values = rng.exponential(size=n_rows * per_row)
    indptr = np.arange(0, n_rows * per_row + 1, per_row, dtype=np.int32)
    X = sp.csr_matrix((values, columns, indptr), shape=(n_rows, n_features))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X.data /= np.repeat(norms, np.diff(X.indptr))
    return X


def prepare(args) -> dict:
    """Write the pool and the fitted net to ``args.workdir``; return the fit's figures.

    A workdir written with the same settings is reused as it is (``--format`` and the
    strategies may differ): its ``settings.json`` holds them and the fit's figures.
    """
    import scipy.sparse as sp
    import torch

    from modal_ally import PDCLNet

    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    settings = {key: getattr(args, key) for key in ("rows", "features", "density",
                                                    "labeled", "classes", "epochs", "seed",
                                                    "threads")}
    saved = workdir / "settings.json"
    if saved.is_file() and json.loads(saved.read_text())["settings"] == settings:
        return json.loads(saved.read_text())["fit"]
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    X_labeled = sparse_rows(args.labeled, args.features, args.density, rng)
    teacher = rng.standard_normal((args.features, args.classes))
    y_labeled = np.asarray(X_labeled @ teacher).argmax(axis=1)
    start_kib, start = _kib("VmRSS"), time.perf_counter()
    net = PDCLNet(max_epochs=args.epochs, random_state=args.seed).fit(X_labeled, y_labeled)
    fit = {"fit_seconds": round(time.perf_counter() - start, 1),
           "fit_peak_rss_above_start_mib": round((_kib("VmHWM") - start_kib) / 1024)}
    with open(workdir / "net.pkl", "wb") as handle:
        pickle.dump(net, handle)
    del net
    pool = sparse_rows(args.rows, args.features, args.density, rng)
    sp.save_npz(workdir / "pool.npz", pool, compressed=False)
    saved.write_text(json.dumps({"settings": settings, "fit": fit}))
    return fit


def _strategy(name):
    from functools import partial

    import modal_ally as ma

    if name == "forward":
        return lambda net, X, n_instances, random_state: net.predict_proba(X)
    return {"ally": ma.ally_query_strategy,
            "ally-paper": partial(ma.ally_query_strategy, method="paper"),
            "ally-redundancy": ma.ally_redundancy_aware_query_strategy,
            "badge": ma.badge_query_strategy,
            "coreset": ma.coreset_query_strategy,
            "random": ma.random_query_strategy}[name]


def measure(name: str, args) -> dict:
    """One query of strategy ``name`` in this (fresh) process."""
    import scipy.sparse as sp
    import torch

    from benchmarks.harness.memory import AnonPeak, load_average

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    pool = sp.load_npz(Path(args.workdir) / "pool.npz").asformat(args.format)
    with open(Path(args.workdir) / "net.pkl", "rb") as handle:
        net = pickle.load(handle)
    strategy = _strategy(name)
    strategy(net, pool[:200], min(args.budget, 20), random_state=0)  # one-time set-up
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:  # not allowed here: the high-water mark includes the loading
        reset = False
    start_kib = _kib("VmRSS")
    with AnonPeak() as anon:
        start = time.perf_counter()
        result = strategy(net, pool, args.budget, random_state=0)
        seconds = time.perf_counter() - start
    picks = np.asarray(result[0] if isinstance(result, tuple) else result)
    unique = "" if name == "forward" else bool(
        picks.shape == (args.budget,) and len(np.unique(picks)) == args.budget)
    return {"strategy": name, "format": args.format, "rows": pool.shape[0],
            "features": pool.shape[1], "stored_values": int(pool.nnz),
            "budget": args.budget, "threads": args.threads, "seconds": round(seconds, 2),
            "peak_rss_above_start_mib": round((_kib("VmHWM") - start_kib) / 1024),
            "peak_anon_above_start_mib": round((anon.peak - anon.base) / 1024),
            "hwm_reset": reset, "unique_picks": unique,
            "start_rss_mib": round(start_kib / 1024), "load": load_average()}


def _child(name, args, queue):
    queue.put(measure(name, args))


def report(rows, fit, args) -> str:
    worst = max(r["peak_rss_above_start_mib"] for r in rows)
    lines = [f"# One query on a {args.rows:,} x {args.features:,} scipy.sparse pool "
             f"({args.format.upper()}, {args.density:.1%} dense, float64), b = "
             f"{args.budget} ({args.threads} torch thread(s))", "",
             f"PDCLNet (default MLP, 2 x 256) fitted on {args.labeled} sparse rows, "
             f"{args.classes} classes, {args.epochs} epochs: {fit['fit_seconds']} s, peak "
             f"resident set {fit['fit_peak_rss_above_start_mib']} MiB above the fit's start "
             "(it holds the first layer's weights, their gradient and Adam's two moments, "
             f"4 x {args.features:,} x 256 float32, and torch's first use of its sparse "
             "kernels; not a pool pass, not under the limit below).", "",
             f"Largest peak above a query's start: {worst} MiB (limit {LIMIT_MIB} MiB: "
             f"{'below' if worst < LIMIT_MIB else 'NOT below'}).", ""]
    lines += markdown_table(
        ["strategy", "seconds", "peak RSS above start (MiB)",
         "peak anonymous memory above start (MiB)", "b unique picks", "RSS at start (MiB)",
         "load average"],
        [[r["strategy"], r["seconds"], r["peak_rss_above_start_mib"],
          r["peak_anon_above_start_mib"], r["unique_picks"], r["start_rss_mib"], r["load"]]
         for r in rows])
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=100_000)
    parser.add_argument("--density", type=float, default=0.001)
    parser.add_argument("--labeled", type=int, default=500)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--format", choices=("csr", "csc"), default="csr")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--workdir", default="/tmp/modal_ally_sparse_pool")
    parser.add_argument("--out", default="docs/results/sparse_pool")
    parser.add_argument("--name", default="sparse_pool",
                        help="file stem of the results (csv and md)")
    args = parser.parse_args(argv)
    names = [n for n in args.strategies.split(",") if n]
    unknown = set(names) - set(STRATEGIES)
    if unknown:
        parser.error(f"unknown strategies {sorted(unknown)}; choose from {STRATEGIES}")
    fit = prepare(args)
    print(fit, flush=True)
    rows = cli.run_each_in_a_process(names, _child, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / f"{args.name}.csv", FIELDS, rows)
    write_atomic(out / f"{args.name}.md", report(rows, fit, args))
    return rows


if __name__ == "__main__":
    main()
