"""What a PDCLNet fit costs against a plain skorch fit of the same network.

Side by side in one process: for each data set and labeled-set size, the arms are fitted
in turn (the order rotated every repeat, so a burst of load on a shared machine falls on
each arm alike), and each arm keeps its best time:

- ``PDCLNet``: :class:`modal_ally.PDCLNet` at its defaults (``random_state`` set): the
  training and the pool head (what the default rule reads); the paper's head is built,
  and trained at its first read;
- ``PDCLNet + paper head``: the same fit with the paper's head read (trained) at once,
  what a user of ``method="paper"``, ``predict_dual`` or the dual stopping criterion
  pays every round;
- ``skorch``: what a plain skorch user writes for the same network and settings:
  ``NeuralNetClassifier(MLP, criterion=CrossEntropyLoss, optimizer=Adam, lr=1e-3,
  max_epochs, batch_size=64, train_split=None)`` with skorch's own ``Dataset`` (one row
  fetched and collated at a time);
- ``skorch (RowDataset)``: the benchmarks'
  :class:`~benchmarks.harness.estimators.PlainNetClassifier`, the same net with
  whole-minibatch fetching (``RowDataset`` + ``collate_rows``, what PDCLNet uses by
  default): the baseline the learning-curve tables time.

Run only when named in ``--arms``: ``PDCLNet without dual heads`` (the training loop
alone) and ``PDCLNet (looped Adam)`` (``optimizer__foreach=False``: torch's default update
on CPU instead of the fused kernel PDCL nets build, what the kernel saves).

Then one instrumented PDCLNet fit (and one of each plain net) says where the time goes:
every named step is wrapped by a timer for that fit only (the timed fits run unwrapped).

    python -m benchmarks.fit_cost --data-dir ../shared/data --out docs/results/fit_cost/run

Writes ``fit_cost.csv`` (every fit), ``fit_cost.md`` (the ratios) and ``profile.csv``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.harness.cli import parse_int_list, torch_threads
from benchmarks.harness.estimators import BATCH_SIZE, LEARNING_RATE, build_estimator
from benchmarks.harness.fit_heads import HEAD_FIELDS, head_candidates, heads_report
from benchmarks.harness.registry import parse_names
from benchmarks.harness.reporting import markdown_table, write_atomic, write_csv

__all__ = ["ARMS", "fit_arm", "measure", "profile_fit", "ratio", "head_candidates",
           "main"]

ARMS = ("PDCLNet", "PDCLNet + paper head", "skorch", "skorch (RowDataset)")
#: Arms run only when named in ``--arms``.
EXTRA_ARMS = ("PDCLNet without dual heads", "PDCLNet (looped Adam)")
DATASETS = ("manyclass", "mnist")
FIT_FIELDS = ("dataset", "n_rows", "arm", "repeat", "seconds", "cpu_s", "loop_s",
              "load_1min")


def _plain_skorch(data, *, epochs, seed):
    """The network a plain skorch user fits: skorch's defaults but for the settings."""
    from skorch import NeuralNetClassifier

    from modal_ally import MLP

    torch.manual_seed(seed)
    return NeuralNetClassifier(
        MLP, module__input_dim=int(np.prod(data.feature_shape)),
        module__output_dim=int(data.n_classes), criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam, lr=LEARNING_RATE, max_epochs=epochs,
        batch_size=BATCH_SIZE, train_split=None, verbose=0)


def build_arm(arm, data, *, epochs, seed=0, **pdcl_params):
    """A fresh, unfitted net of ``arm`` (one of :data:`ARMS`); ``pdcl_params`` go to
    PDCLNet (none: its defaults)."""
    from modal_ally import PDCLNet

    if arm in ("PDCLNet", "PDCLNet + paper head"):
        return PDCLNet(max_epochs=epochs, random_state=seed, **pdcl_params)
    if arm == "PDCLNet without dual heads":  # the training loop's own cost
        return PDCLNet(max_epochs=epochs, random_state=seed, callbacks__dual_head=None)
    if arm == "PDCLNet (looped Adam)":  # torch's default on CPU, not the fused kernel
        return PDCLNet(max_epochs=epochs, random_state=seed, optimizer__foreach=False,
                       **pdcl_params)
    if arm == "skorch":
        return _plain_skorch(data, epochs=epochs, seed=seed)
    if arm == "skorch (RowDataset)":
        return build_estimator("random", data, epochs=epochs, seed=seed)
    raise ValueError(f"unknown arm {arm!r}; choose one of {', '.join(ARMS + EXTRA_ARMS)}")


def fit_arm(arm, data, X, y, *, epochs, seed=0, **pdcl_params):
    """Fit a fresh net of ``arm``; returns ``(seconds, CPU seconds, loop seconds, net)``.

    ``CPU seconds``: the process's CPU time (one thread: the time the fit takes when it
    has a core to itself, whatever else the machine runs); ``loop seconds``: skorch's
    epoch durations summed (the training loop alone, wall clock)."""
    net = build_arm(arm, data, epochs=epochs, seed=seed, **pdcl_params)
    start, cpu = time.perf_counter(), time.process_time()
    net.fit(X, y)
    if arm == "PDCLNet + paper head":
        net.dual_head_  # noqa: B018  (the read trains it)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, float(sum(net.history[:, "dur"])), net


def measure(data, n_rows, *, epochs, repeats, arms=ARMS, log=print, **pdcl_params):
    """``repeats`` interleaved fits of every arm on the first ``n_rows`` pool rows."""
    X, y = data.X_pool[:n_rows], data.y_pool[:n_rows]
    for arm in arms:  # untimed: the first fit of a process pays torch's lazy set-up
        fit_arm(arm, data, X[:128], y[:128], epochs=1, **pdcl_params)
    rows = []
    for repeat in range(repeats):
        order = arms[repeat % len(arms):] + arms[:repeat % len(arms)]
        for arm in order:
            seconds, cpu, loop, _ = fit_arm(arm, data, X, y, epochs=epochs,
                                            **pdcl_params)
            rows.append(dict(dataset=data.name, n_rows=n_rows, arm=arm, repeat=repeat,
                             seconds=seconds, cpu_s=cpu, loop_s=loop,
                             load_1min=os.getloadavg()[0]))
            log(f"  {data.name} {n_rows} {arm}: {seconds:.3f} s, CPU {cpu:.3f} s (loop "
                f"{loop:.3f} s, load {rows[-1]['load_1min']:.2f})")
    return rows


# ------------------------------------------------------------------ where the time goes
def _profiled_steps():
    """``(label, owner, attribute)`` of every step the profile times."""
    from skorch import NeuralNet, NeuralNetClassifier
    from skorch.callbacks import PrintLog

    from modal_ally import _dual_heads, _pdcl, callbacks, data
    from modal_ally._dual_state import DualState

    return [
        ("skorch train_step_single (forward, loss, backward)", NeuralNet,
         "train_step_single"),
        # skorch hands the forward and backward pass to Adam's step as its closure
        ("optimizer step (Adam, the closure included; the dual heads' steps too)",
         torch.optim.Adam, "step"),
        ("PDCL get_loss (gather + Lagrangian)", _pdcl.PDCLMixin, "get_loss"),
        ("skorch get_loss", NeuralNetClassifier, "get_loss"),
        ("PDCL train_step_single (incl. skorch's)", _pdcl.PDCLMixin, "train_step_single"),
        ("dual step (DualState.step)", DualState, "step"),
        ("per-row gather (DualState.gather)", DualState, "gather"),
        ("RowDataset.__getitems__", data.RowDataset, "__getitems__"),
        ("collate_rows", data, "collate_rows"),
        ("history bookkeeping (DualStatistics)", callbacks.DualStatistics, "on_epoch_end"),
        ("NonFiniteGuard (epoch end)", callbacks.NonFiniteGuard, "on_epoch_end"),
        ("NonFiniteGuard (train begin)", callbacks.NonFiniteGuard, "on_train_begin"),
        ("PrintLog (epoch end)", PrintLog, "on_epoch_end"),
        ("dual heads after training (DualHeadFit)", callbacks.DualHeadFit, "on_train_end"),
        ("  embedding the training rows", callbacks, "embed"),
        ("  paper's head built (its training left to its first read)",
         _dual_heads.DualHeadsMixin, "_fit_dual_head"),
        ("  pool head fit", _dual_heads.DualHeadsMixin, "_fit_pool_dual_head"),
    ]


@contextlib.contextmanager
def _timed(steps):
    """Wrap each step by a timer; yields ``{label: [seconds, calls]}``; unwraps after."""
    totals = {label: [0.0, 0] for label, _, _ in steps}
    saved = []

    def wrapper(function, slot):
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                slot[0] += time.process_time() - start
                slot[1] += 1
        return timed

    for label, owner, name in steps:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, wrapper(original, totals[label]))
    try:
        yield totals
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def _with_collate(net):
    """The net with ``collate_rows`` looked up at call time (it is bound at import)."""
    from modal_ally import data as data_module

    if net.get_params().get("iterator_train__collate_fn") is data_module.collate_rows:
        net.set_params(iterator_train__collate_fn=lambda b: data_module.collate_rows(b))
    return net


def profile_fit(data, n_rows, *, epochs, arms=ARMS, **pdcl_params):
    """One instrumented fit of each arm: rows of (arm, step, CPU seconds, calls)."""
    X, y = data.X_pool[:n_rows], data.y_pool[:n_rows]
    rows = []
    for arm in arms:
        net = _with_collate(build_arm(arm, data, epochs=epochs, **pdcl_params))
        with _timed(_profiled_steps()) as totals:
            start = time.process_time()
            net.fit(X, y)
            total = time.process_time() - start
        rows.append(dict(dataset=data.name, n_rows=n_rows, arm=arm, step="whole fit",
                         seconds=total, calls=1))
        rows += [dict(dataset=data.name, n_rows=n_rows, arm=arm, step=label,
                      seconds=seconds, calls=calls)
                 for label, (seconds, calls) in totals.items() if calls]
    return rows


# ------------------------------------------------------------------ report
def summarize(fit_rows):
    """Per data set and size, every arm's best wall-clock and best CPU seconds."""
    out = []
    for key in dict.fromkeys((r["dataset"], r["n_rows"]) for r in fit_rows):
        rows = [r for r in fit_rows if (r["dataset"], r["n_rows"]) == key]
        arms = dict.fromkeys(r["arm"] for r in rows)
        out.append(dict(dataset=key[0], n_rows=key[1], **{
            field: {arm: min(r[field] for r in rows if r["arm"] == arm) for arm in arms}
            for field in ("seconds", "cpu_s")}))
    return out


def ratio(summary, arm, field="cpu_s", of="PDCLNet"):
    """The best time of ``of`` over ``arm``'s (None where either is missing)."""
    best = summary[field]
    return best[of] / best[arm] if arm in best and of in best else None


#: The report's ratio columns: (numerator, denominator).
RATIOS = (("PDCLNet", "skorch (RowDataset)"), ("PDCLNet", "skorch"),
          ("PDCLNet + paper head", "skorch"), ("PDCLNet", "PDCLNet (looped Adam)"))


def _cell(value, digits=3, bold=False):
    if value is None:
        return ""
    return f"**{value:.{digits}f}**" if bold else f"{value:.{digits}f}"


def report(summaries, profile_rows, settings) -> str:
    """The Markdown report: ratios, best times, and the profile."""
    lines = ["# A PDCLNet fit against plain skorch", "", settings, ""]
    shown = [a for a in ARMS + EXTRA_ARMS if any(a in s["cpu_s"] for s in summaries)]
    table = [[s["dataset"], f"{s['n_rows']:,}"]
             + [_cell(ratio(s, b, of=a), bold=True) for a, b in RATIOS]
             + [_cell(ratio(s, b, "seconds", of=a)) for a, b in RATIOS]
             + [_cell(s["cpu_s"].get(a)) for a in shown]
             + [_cell(s["seconds"].get(a)) for a in shown] for s in summaries]
    lines += markdown_table(
        ["data", "rows", *(f"{a} / {b} (CPU)" for a, b in RATIOS),
         *(f"{a} / {b} (wall)" for a, b in RATIOS), *(f"{a} CPU s" for a in shown),
         *(f"{a} wall s" for a in shown)], table)
    lines += ["", "Best of the repeats, the whole `fit` (the pool head included; the paper's "
              "head where named). CPU: the "
              "process's CPU time (one thread), what the fit costs with a core to itself; "
              "wall: elapsed, which a loaded machine inflates unevenly.", "",
              "## Where the time goes (CPU seconds of one instrumented fit of each arm; "
              "nested steps overlap)", ""]
    lines += markdown_table(["data", "rows", "arm", "step", "CPU s", "calls"],
                            [[r["dataset"], f"{r['n_rows']:,}", r["arm"], r["step"],
                              f"{r['seconds']:.3f}", r["calls"]] for r in profile_rows])
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fit_cost",
        description="PDCLNet's fit against a plain skorch fit of the same network.")
    add = parser.add_argument
    add("--datasets", default=",".join(DATASETS),
        help="comma-separated, of manyclass and mnist (default: %(default)s)")
    add("--sizes", default="1000,10000", help="labeled rows (default: %(default)s)")
    add("--epochs", type=int, default=50, help="epochs of every fit (default: %(default)s)")
    add("--repeats", type=int, default=3,
        help="interleaved repeats, best kept (default: %(default)s)")
    add("--arms", default=",".join(ARMS), help="comma-separated (default: all)")
    add("--dual-head-epochs", type=int, default=None,
        help="PDCLNet's dual_head_epochs (default: its own default)")
    add("--dual-head-lr", type=float, default=None, help="PDCLNet's dual_head_lr")
    add("--dual-head-batch-size", type=int, default=None,
        help="PDCLNet's dual_head_batch_size")
    add("--no-profile", action="store_true", help="skip the instrumented fits")
    add("--heads", type=int, default=0, metavar="SEEDS",
        help="instead of the timings: re-train the dual heads of SEEDS fits per size by "
             "each of HEAD_CANDIDATES and compare their pool rankings")
    add("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    add("--data-dir", default=None, help="folder holding MNIST/ (mnist is skipped without)")
    add("--out", default=str(Path("docs", "results", "fit_cost", "run")),
        help="output directory (default: %(default)s)")
    return parser


def _load(name, data_dir, largest):
    from benchmarks.harness.datasets import load_dataset

    if name == "mnist":
        try:
            data = load_dataset("mnist", data_dir=data_dir, random_state=0)
        except (ValueError, FileNotFoundError) as exc:
            print(f"mnist skipped: {exc} (pass --data-dir with MNIST/raw)", flush=True)
            return None
    else:
        data = load_dataset(name, random_state=0)
    if data.X_pool.shape[0] < largest:
        raise SystemExit(f"{name} has {data.X_pool.shape[0]} pool rows, fewer than "
                         f"--sizes asks ({largest})")
    return data


def main(argv=None) -> dict:
    """Run the benchmark; returns ``{"fits", "profile", "summaries", "paths"}``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        sizes = parse_int_list(args.sizes, name="--sizes")
        names, arms = parse_names(args.datasets), tuple(parse_names(args.arms))
        if set(names) - set(DATASETS) or not names:
            raise ValueError(f"--datasets: choose among {', '.join(DATASETS)}")
        if set(arms) - set(ARMS + EXTRA_ARMS) or "PDCLNet" not in arms \
                or not set(arms) & set(ARMS[1:]):
            raise ValueError(f"--arms: PDCLNet and at least one of {', '.join(ARMS[1:])} "
                             f"(also: {', '.join(EXTRA_ARMS)})")
    except ValueError as exc:
        parser.error(str(exc))
    if args.epochs < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--epochs, --repeats and --threads must be >= 1")
    pdcl_params = {name: getattr(args, name) for name in
                   ("dual_head_epochs", "dual_head_lr", "dual_head_batch_size")
                   if getattr(args, name) is not None}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.heads:
        return _run_heads(args, names, sizes, out)
    fits, profile, start_load = [], [], os.getloadavg()
    with torch_threads(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            data = _load(name, args.data_dir, max(sizes))
            for n_rows in [] if data is None else sizes:
                print(f"{name}: {n_rows} rows, {args.epochs} epochs, "
                      f"{args.repeats} repeats", flush=True)
                fits += measure(data, n_rows, epochs=args.epochs, repeats=args.repeats,
                                arms=arms, **pdcl_params)
                if not args.no_profile:
                    profile += profile_fit(data, n_rows, epochs=args.epochs, arms=arms,
                                           **pdcl_params)
    settings = (f"PDCLNet {pdcl_params or 'at its defaults'}; "
                f"{args.epochs} epochs, batch {BATCH_SIZE}, Adam lr {LEARNING_RATE}, MLP "
                f"d -> 256 -> 256 -> classes, torch threads {args.threads}, best of "
                f"{args.repeats} interleaved repeats; torch {torch.__version__}, "
                f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
                f"load average at the start {start_load[0]:.2f}, at the end "
                f"{os.getloadavg()[0]:.2f}")
    summaries = summarize(fits)
    paths = {"csv": write_csv(out / "fit_cost.csv", FIT_FIELDS, fits),
             "profile": write_csv(out / "profile.csv",
                                  ("dataset", "n_rows", "arm", "step", "seconds", "calls"),
                                  profile),
             "md": out / "fit_cost.md"}
    markdown = report(summaries, profile, settings)
    write_atomic(paths["md"], markdown)
    print(markdown)
    return {"fits": fits, "profile": profile, "summaries": summaries, "paths": paths}


def _run_heads(args, names, sizes, out) -> dict:
    rows = []
    with torch_threads(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            data = _load(name, args.data_dir, max(sizes))
            for n_rows in [] if data is None else sizes:
                for seed in range(args.heads):
                    print(f"{name}: {n_rows} rows, seed {seed}", flush=True)
                    rows += head_candidates(data, n_rows, seed, epochs=args.epochs)
    paths = {"csv": write_csv(out / "heads.csv", HEAD_FIELDS, rows), "md": out / "heads.md"}
    markdown = heads_report(rows)
    write_atomic(paths["md"], markdown)
    print(markdown)
    return {"heads": rows, "paths": paths}


if __name__ == "__main__":
    main()
