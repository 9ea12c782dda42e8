"""Speed and memory of PDCL training and of every query strategy.

Two parts (``--parts``, default both):

``fit``
    Wall time of one ``fit`` of :class:`modal_ally.PDCLNet` against a plain skorch
    ``NeuralNetClassifier`` with the same :class:`modal_ally.MLP`, data, epochs, batch size
    (64), optimizer and whole-batch fetching (``dataset=RowDataset``); the plain net with
    skorch's default per-row ``Dataset`` is reported too. Synthetic digits-sized data
    (64 features, 10 Gaussian classes), ``--fit-sizes`` rows, best of ``--repeats``.
    ``ratio`` is relative to the plain net with fast batches; ``train_loop_s`` is the sum
    of skorch's per-epoch durations (PDCLNet's fit also embeds the training rows and fits
    the dual head after the loop: the difference to ``seconds``).
``query``
    Wall time and peak memory of one ``learner.query(X_pool, n_instances=b)`` of every
    strategy on synthetic pools of ``--pool-sizes`` rows (``--pool-features``, default
    256; MLP 256 -> 256 -> 256, so the embedding is 256-d), for every ``b`` in
    ``--budgets``, with a learner
    fitted on ``--labeled`` labeled rows; ``ratio`` is relative to one forward pass of the
    backbone over the same pool (``PDCLNet.embed(X_pool)``, measured the same way:
    section ``forward``).

Each query (and forward) measurement runs in a fresh spawned process
(``benchmarks/harness/isolated.py``): the best of ``--repeats`` queries, the resident peak
above the set-up's memory (``peak_rss_mib``; ``rss_reset`` says whether the high-water mark
could be reset), ``peak_traced_mib`` (one more query under ``tracemalloc``: numpy and
Python allocations, not torch's) and on CUDA ``peak_cuda_mib``.
A measurement whose queries take longer than ``--timeout`` seconds is stopped and
reported as ``timeout``; ``--skip-slow`` skips modAL's ranked batch (O(N (L + b) d) per
pick, N x b picks in all) where ``N * b > 10^7`` (reported as ``skipped``).

Outputs in ``--out`` (default ``results/speed``): ``speed.csv`` and ``speed.md``.
Timings depend on the machine and its load; compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import math
import time
import types
import warnings
from pathlib import Path

import numpy as np

from benchmarks.harness import isolated
from benchmarks.harness.cli import parse_int_list
from benchmarks.harness.estimators import BATCH_SIZE, build_estimator
from benchmarks.harness.registry import ALL_STRATEGIES, STRATEGIES, parse_names, resolve_strategies
from benchmarks.harness.reporting import format_cell, markdown_table, write_atomic, write_csv

FIT_FEATURES = 64  # digits-sized rows for the fit part
POOL_FEATURES = 256  # DESIGN 2.3: pools of 10^5-10^6 x 256
N_CLASSES = 10
HIDDEN = (256, 256)
SLOW_STRATEGIES = {"ranked-batch": 10**7}  # N * b above which --skip-slow skips
#: Query variants of a registered strategy: name -> (strategy, query keyword arguments).
VARIANTS = {"ally-paper": ("ally", {"method": "paper"})}
FIELDS = ("section", "method", "n_rows", "budget", "repeats", "seconds", "ratio", "ratio_to",
          "train_loop_s", "peak_rss_mib", "peak_traced_mib", "peak_cuda_mib", "rss_reset",
          "status")
FIT_METHODS = ("PDCLNet", "NeuralNetClassifier (RowDataset)",
               "NeuralNetClassifier (default Dataset)")
FIT_REFERENCE = "NeuralNetClassifier (RowDataset)"
FORWARD_METHOD = "backbone forward (embed)"


# ============================================================================ data
def synthetic_data(n_rows: int, *, seed: int = 0, n_features: int = FIT_FEATURES):
    """Gaussian classes: ``X`` float32 (n, n_features), ``y`` int64 in 0..9.

    The class centers are fixed (the same for every call), so a labeled set and a pool
    drawn with different seeds come from one distribution. Built in place in chunks,
    without temporaries the size of the pool.
    """
    centers = 2.0 * np.random.default_rng(12345).standard_normal(
        (N_CLASSES, n_features), dtype=np.float32)
    rng = np.random.default_rng(seed)
    y = rng.integers(N_CLASSES, size=int(n_rows)).astype(np.int64)
    X = rng.standard_normal((int(n_rows), n_features), dtype=np.float32)
    for start in range(0, X.shape[0], 1 << 16):
        X[start:start + (1 << 16)] += centers[y[start:start + (1 << 16)]]
    return X, y


def _data_spec(n_features):
    """What :func:`benchmarks.harness.estimators.build_estimator` needs to know of the data."""
    return types.SimpleNamespace(task="classification", n_classes=N_CLASSES, module="mlp",
                                 feature_shape=(n_features,))


def _estimator(strategy, *, epochs, device, n_features=FIT_FEATURES, **params):
    params.setdefault("module__hidden_units", HIDDEN)
    return build_estimator(strategy, _data_spec(n_features), epochs=epochs, seed=0,
                                  device=device, **params)


# ============================================================================ fit part
def _plain_default_dataset_params():
    from skorch.dataset import Dataset
    from torch.utils.data import default_collate

    return dict(dataset=Dataset, iterator_train__collate_fn=default_collate,
                iterator_valid__collate_fn=default_collate)


def measure_fit(n_rows: int, *, epochs: int, repeats: int, device: str,
                batch_size: int = BATCH_SIZE) -> list[dict]:
    """Best-of-``repeats`` fit times of the three nets on ``n_rows`` synthetic rows."""
    X, y = synthetic_data(n_rows, seed=1)
    factories = {
        "PDCLNet": lambda: _estimator("ally", epochs=epochs, device=device,
                                                batch_size=batch_size),
        "NeuralNetClassifier (RowDataset)": lambda: _estimator("random", epochs=epochs,
                                                               device=device,
                                                               batch_size=batch_size),
        "NeuralNetClassifier (default Dataset)": lambda: _estimator(
            "random", epochs=epochs, device=device, batch_size=batch_size,
            **_plain_default_dataset_params()),
    }
    warm_X, warm_y = X[:128], y[:128]
    results = {}
    for method, factory in factories.items():
        # one untimed fit first: the first fit of a process pays for torch's lazy set-up
        factory().set_params(max_epochs=1).fit(warm_X, warm_y)
        best = None
        for _ in range(repeats):
            net = factory()
            _sync(device)
            start = time.perf_counter()
            net.fit(X, y)
            _sync(device)
            seconds = time.perf_counter() - start
            loop = float(sum(net.history[:, "dur"]))
            if best is None or seconds < best[0]:
                best = (seconds, loop)
        results[method] = best
    reference = results[FIT_REFERENCE][0]
    return [{"section": "fit", "method": method, "n_rows": n_rows, "budget": None,
             "repeats": repeats, "seconds": seconds, "ratio": seconds / reference,
             "ratio_to": FIT_REFERENCE, "train_loop_s": loop, "status": "ok"}
            for method, (seconds, loop) in results.items()]


def _sync(device):
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# ============================================================================ query part
def _measured_call(job: dict):
    """Build the data and a fitted learner; return the call to measure (no argument).

    The forward pass runs on a PDCLNet's backbone (``PDCLNet.embed``): the same MLP
    backbone as the plain net's.
    """
    from modAL.models import ActiveLearner

    n_features = job.get("n_features", POOL_FEATURES)
    X_pool, _ = synthetic_data(job["n_rows"], seed=0, n_features=n_features)
    X_lab, y_lab = synthetic_data(job["labeled"], seed=1, n_features=n_features)
    name, extra = VARIANTS.get(job["strategy"] or "ally", (job["strategy"] or "ally", {}))
    spec = STRATEGIES[name]
    learner = ActiveLearner(
        estimator=_estimator(name, epochs=job["fit_epochs"], device=job["device"],
                             n_features=n_features),
        query_strategy=spec.load(), X_training=X_lab, y_training=y_lab)
    if job["strategy"] is None:
        return lambda: learner.estimator.embed(X_pool)
    kwargs = {"random_state": 0, **extra} if spec.accepts_random_state else {}
    return lambda: learner.query(X_pool, n_instances=job["budget"], **kwargs)


def run_measurement(job: dict, *, timeout: float) -> dict:
    """One measurement of ``job`` (see :func:`_measured_call`) in a fresh spawned
    process: :func:`benchmarks.harness.isolated.run_measurement`."""
    return isolated.run_measurement(_measured_call, job, timeout=timeout)


def skip_reason(strategy: str, n_rows: int, budget: int, *, skip_slow: bool):
    """Why a query measurement is not run (a status string), or None to run it."""
    if budget > n_rows:
        return "skipped (budget > pool)"
    if skip_slow and n_rows * budget > SLOW_STRATEGIES.get(strategy, math.inf):
        return "skipped"
    return None


def measure_queries(pool_sizes, budgets, strategies, *, repeats, timeout, skip_slow,
                    labeled, fit_epochs, device, n_features=POOL_FEATURES, threads=None,
                    log=print) -> list[dict]:
    """Forward-pass and query measurements for every pool size, strategy and budget."""
    rows = []
    for n_rows in pool_sizes:
        base = {"n_rows": n_rows, "labeled": labeled, "fit_epochs": fit_epochs,
                "device": device, "repeats": repeats, "n_features": n_features,
                "threads": threads}
        log(f"pool {n_rows}: forward pass")
        forward = run_measurement({**base, "strategy": None, "budget": None},
                                  timeout=timeout)
        rows.append(_query_row("forward", FORWARD_METHOD, n_rows, None, repeats, forward))
        reference = forward.get("seconds")
        for strategy in strategies:
            for budget in budgets:
                reason = skip_reason(strategy, n_rows, budget, skip_slow=skip_slow)
                if reason:
                    rows.append(_query_row("query", strategy, n_rows, budget, repeats,
                                           {"status": reason}))
                    continue
                log(f"pool {n_rows}: {strategy}, b={budget}")
                result = run_measurement({**base, "strategy": strategy, "budget": budget},
                                         timeout=timeout)
                if result.get("traceback"):
                    log(result["traceback"])
                row = _query_row("query", strategy, n_rows, budget, repeats, result)
                if reference and row["seconds"] is not None:
                    row["ratio"] = row["seconds"] / reference
                rows.append(row)
    return rows


def _query_row(section, method, n_rows, budget, repeats, result):
    return {"section": section, "method": method, "n_rows": n_rows, "budget": budget,
            "repeats": repeats, "seconds": result.get("seconds"),
            "ratio": 1.0 if section == "forward" and result.get("seconds") else None,
            "ratio_to": "forward pass", "train_loop_s": None,
            "peak_rss_mib": result.get("peak_rss_mib"),
            "peak_traced_mib": result.get("peak_traced_mib"),
            "peak_cuda_mib": result.get("peak_cuda_mib"),
            "rss_reset": result.get("rss_reset"), "status": result["status"]}


# ============================================================================ output
def _cell(value, digits=3):
    return format_cell(value, digits)


def write_outputs(rows, out_dir, *, header: str):
    """Write ``speed.csv`` and ``speed.md``; return their paths and the Markdown text."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "speed.csv", out_dir / "speed.md"
    write_csv(csv_path, FIELDS, rows)
    lines = [header, ""]
    fit = [r for r in rows if r["section"] == "fit"]
    if fit:
        lines += ["## Fit time (best of repeats)", "",
                  f"ratio: seconds / {FIT_REFERENCE}; train loop: sum of skorch's epoch "
                  "durations (PDCLNet's fit also embeds the rows and fits the dual head).", ""]
        lines += markdown_table(
            ["rows", "net", "seconds", "train loop s", "ratio"],
            [[r["n_rows"], r["method"], _cell(r["seconds"]), _cell(r["train_loop_s"]),
              _cell(r["ratio"], 2)] for r in fit])
        lines.append("")
    query = [r for r in rows if r["section"] in ("forward", "query")]
    if query:
        lines += ["## Query time and peak memory", "",
                  "ratio: seconds / one backbone forward pass over the same pool; "
                  "peak RSS: resident high-water mark minus the baseline after set-up; "
                  "traced: tracemalloc peak (numpy/Python).", ""]
        lines += markdown_table(
            ["pool", "method", "b", "seconds", "ratio to forward", "peak RSS MiB",
             "traced MiB", "status"],
            [[r["n_rows"], r["method"], _cell(r["budget"]), _cell(r["seconds"]),
              _cell(r["ratio"], 1), _cell(r["peak_rss_mib"], 1),
              _cell(r["peak_traced_mib"], 1), r["status"]] for r in query])
        if any(r.get("peak_cuda_mib") is not None for r in query):
            lines += ["", "CUDA peak (MiB): " + ", ".join(
                f"{r['method']} N={r['n_rows']} b={_cell(r['budget'])}: "
                f"{_cell(r['peak_cuda_mib'], 1)}" for r in query
                if r.get("peak_cuda_mib") is not None)]
    markdown = "\n".join(lines) + "\n"
    write_atomic(md_path, markdown)
    return {"csv": csv_path, "md": md_path}, markdown


# ============================================================================ CLI
def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.speed",
        description="Fit time of PDCLNet vs a plain skorch net; query time and peak memory "
                    "of every strategy.")
    parser.add_argument("--parts", default="fit,query",
                        help="comma-separated: fit, query (default: %(default)s)")
    parser.add_argument("--fit-sizes", default="1000,5000",
                        help="training rows for the fit part (default: %(default)s)")
    parser.add_argument("--fit-batch-size", type=int, default=BATCH_SIZE,
                        help="minibatch size of the fit part (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=20,
                        help="epochs of the fit part (default: %(default)s)")
    parser.add_argument("--pool-sizes", default="10000,100000,1000000",
                        help="pool sizes of the query part (default: %(default)s)")
    parser.add_argument("--budgets", default="100,1000",
                        help="batch sizes b of the query part (default: %(default)s)")
    parser.add_argument("--strategies", default="all",
                        help="comma-separated strategies or 'all' (default): "
                             + ", ".join(ALL_STRATEGIES + tuple(VARIANTS)))
    parser.add_argument("--pool-features", type=int, default=POOL_FEATURES,
                        help="features of the synthetic pool rows (default: 256, as the "
                             "10^5 x 256 pools of DESIGN 2.3)")
    parser.add_argument("--labeled", type=int, default=1000,
                        help="labeled rows of the learners of the query part "
                             "(default: %(default)s)")
    parser.add_argument("--fit-epochs", type=int, default=5,
                        help="epochs of the learners' fit in the query part (not timed; "
                             "default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats per measurement, best kept (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds allowed for the queries of one measurement "
                             "(default: %(default)s)")
    parser.add_argument("--skip-slow", action="store_true",
                        help="skip ranked-batch where pool x b > 1e7")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of every measurement (default: torch's own "
                             "choice); recorded in the table's header")
    parser.add_argument("--out", default=str(Path("results", "speed")),
                        help="output directory (default: %(default)s)")
    return parser


def main(argv=None) -> dict:
    """Run the speed benchmark.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    result : dict
        ``rows`` (list of dict, as ``speed.csv``) and ``paths``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        parts = parse_names(args.parts)
        if not parts or set(parts) - {"fit", "query"}:
            raise ValueError(f"--parts: expected fit and/or query, got {args.parts!r}")
        fit_sizes = parse_int_list(args.fit_sizes, name="--fit-sizes")
        pool_sizes = parse_int_list(args.pool_sizes, name="--pool-sizes")
        budgets = parse_int_list(args.budgets, name="--budgets")
        requested = parse_names(args.strategies)
        others = [n for n in requested if n not in VARIANTS]
        strategies = resolve_strategies(",".join(others), "classification")[0] \
            if others else []
        strategies = strategies + list(VARIANTS) if others == ["all"] else requested
    except ValueError as exc:
        parser.error(str(exc))
    for name in ("epochs", "labeled", "fit_epochs", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.timeout > 0:
        parser.error("--timeout must be > 0")
    if str(args.device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error(f"--device {args.device} was requested but CUDA is not available")

    rows = []
    if "fit" in parts:
        for n_rows in fit_sizes:
            print(f"fit: {n_rows} rows, {args.epochs} epochs, best of {args.repeats}",
                  flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows += measure_fit(n_rows, epochs=args.epochs, repeats=args.repeats,
                                    device=args.device, batch_size=args.fit_batch_size)
    if "query" in parts:
        rows += measure_queries(pool_sizes, budgets, strategies, repeats=args.repeats,
                                timeout=args.timeout, skip_slow=args.skip_slow,
                                labeled=args.labeled, fit_epochs=args.fit_epochs,
                                device=args.device, n_features=args.pool_features,
                                threads=args.threads,
                                log=lambda text: print(text, flush=True))
    settings = [f"device {args.device}", f"best of {args.repeats}",
                f"torch threads {args.threads or 'default'}"]
    if "fit" in parts:
        settings.append(f"fit: {args.epochs} epochs, batch {args.fit_batch_size}")
    if "query" in parts:
        settings.append(f"query: {args.labeled} labeled rows, MLP {args.pool_features} -> "
                        f"{' -> '.join(map(str, HIDDEN))}")
    header = f"# Speed ({'; '.join(settings)})"
    paths, markdown = write_outputs(rows, args.out, header=header)
    print()
    print(markdown)
    print(f"table: {paths['csv']} and {paths['md']}")
    return {"rows": rows, "paths": paths}


if __name__ == "__main__":
    main()
