"""The command line the learning-curve benchmarks share: flags, checks, data, one ``main``.

``learning_curves.py``, ``epsilon_ablation.py`` and ``redundancy.py`` build their parser
with :func:`add_loop_arguments`, check it with :func:`check_loop_arguments` and run with
:func:`run_benchmark` (the loop, then the report).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from benchmarks.harness.estimators import BATCH_SIZE, LEARNING_RATE
from benchmarks.harness.loop import run_active_learning
from benchmarks.harness.registry import parse_names
from benchmarks.harness.reporting import write_report
from benchmarks.harness.store import SettingsError
from modal_ally._torch_utils import torch_threads

__all__ = ["add_loop_arguments", "check_loop_arguments", "load_benchmark_data",
           "loop_config", "loop_parser", "out_dir", "parse_int_list", "parse_loop_args",
           "run_benchmark", "torch_threads"]


def parse_int_list(text: str, *, name: str, minimum: int = 1) -> list[int]:
    """Parse ``"1,2,3"`` into ints >= ``minimum`` (``1e4``-style values are accepted)."""
    values = []
    for part in parse_names(text):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{name}: {part!r} is not a number") from None
        if not value.is_integer() or value < minimum:
            raise ValueError(f"{name}: {part!r} must be an integer >= {minimum}")
        values.append(int(value))
    if not values:
        raise ValueError(f"{name}: give at least one value")
    return values


def add_loop_arguments(parser, *, dataset="digits", initial=100, budget=100, rounds=5,
                       seeds=5, epochs=50):
    """Add the flags every learning-curve benchmark shares to an argparse parser."""
    from benchmarks.harness.datasets import DATASETS

    add = parser.add_argument
    add("--dataset", default=dataset, choices=DATASETS, help="data set (default: %(default)s)")
    add("--initial", type=int, default=initial,
        help="size of the random initial labeled set (default: %(default)s)")
    add("--budget", type=int, default=budget,
        help="labels queried per round (default: %(default)s)")
    add("--rounds", type=int, default=rounds,
        help="query rounds after the initial fit (default: %(default)s)")
    add("--seeds", type=int, default=seeds, help="number of seeds, 0..n-1 (default: %(default)s)")
    add("--epochs", type=int, default=epochs,
        help="training epochs of every fit (default: %(default)s)")
    add("--out", default=None, help="output directory (locked while a run uses it)")
    add("--data-dir", default=None,
        help="directory of the torchvision data sets (mnist, cifar10, svhn)")
    add("--redundancy", type=int, default=1,
        help="copies of each pool row for digits-redundant (default: 1)")
    add("--max-pool", type=int, default=None,
        help="keep at most this many pool rows (seeded subset)")
    add("--device", default="cpu", help="torch device (default: cpu)")
    add("--threads", type=int, default=None,
        help="torch threads (default: torch's own choice); recorded in the state, and a "
             "resumed run must use the same count")
    add("--allow-thread-change", action="store_true",
        help="resume a run written with another torch thread count (warns; the results "
             "then differ from an uninterrupted run)")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser


def loop_parser(prog: str, description: str, **defaults) -> argparse.ArgumentParser:
    """A parser with the shared loop flags (``defaults`` as in :func:`add_loop_arguments`)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    return add_loop_arguments(parser, **defaults)


def parse_loop_args(parser, argv):
    """Parse ``argv`` and check the loop flags (:func:`check_loop_arguments`)."""
    args = parser.parse_args(argv)
    check_loop_arguments(parser, args)
    return args


def out_dir(args, *default) -> Path:
    """``--out``, or ``results/<default...>`` when it is not given."""
    return Path(args.out) if args.out else Path("results", *default)


def check_loop_arguments(parser, args):
    """Reject out-of-range loop flags with ``parser.error``."""
    for name, minimum in (("initial", 1), ("budget", 1), ("rounds", 0), ("seeds", 1),
                          ("epochs", 1), ("redundancy", 1)):
        if getattr(args, name) < minimum:
            parser.error(f"--{name} must be >= {minimum}, got {getattr(args, name)}")
    for name in ("max_pool", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got "
                         f"{getattr(args, name)}")
    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was requested but CUDA is not available")


def load_benchmark_data(args):
    """Load ``args.dataset`` (fixed split, ``random_state=0``: the same for every seed)."""
    from benchmarks.harness.datasets import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, redundancy=args.redundancy,
                        max_pool=args.max_pool, random_state=0)


def loop_config(args, **extra) -> dict:
    """The settings a resumed run must share with the run that wrote the state."""
    config = {"dataset": args.dataset, "redundancy": args.redundancy,
              "max_pool": args.max_pool, "data_random_state": 0, "initial": args.initial,
              "budget": args.budget, "epochs": args.epochs, "batch_size": BATCH_SIZE,
              "lr": LEARNING_RATE}
    config.update(extra)
    return config


def run_benchmark(parser, args, data, arms, out_dir, *, title: str,
                  print_report: bool = True, observers=None) -> dict:
    """Run (or resume) the loop for ``arms`` and write the report: the shared ``main``.

    Settings errors (and a folder locked by another run) end through ``parser.error``;
    modAL 0.4.1's ``force_all_finite`` FutureWarning is silenced. ``observers`` go to
    :func:`benchmarks.harness.loop.run_active_learning`. Returns ``rows``, ``summary`` and
    ``paths``.
    """
    with warnings.catch_warnings(), torch_threads(args.threads):
        # modAL 0.4.1 passes force_all_finite, renamed by scikit-learn 1.6
        warnings.filterwarnings("ignore", message=".*force_all_finite.*",
                                category=FutureWarning)
        try:
            rows = run_active_learning(
                data, arms, list(range(args.seeds)), initial=args.initial,
                budget=args.budget, rounds=args.rounds, epochs=args.epochs, out_dir=out_dir,
                config=loop_config(args), device=args.device, progress=not args.no_progress,
                observers=observers, allow_thread_change=args.allow_thread_change)
        except SettingsError as exc:
            parser.error(str(exc))
    paths, summary, markdown = write_report(rows, out_dir, task=data.task, title=title)
    if print_report:
        print()
        print(markdown)
        print(f"rounds:  {paths['rounds']}")
        print(f"summary: {paths['summary_csv']} and {paths['summary_md']}")
        print(f"plot:    {paths['plot']}", flush=True)
    return {"rows": rows, "summary": summary, "paths": paths}


def run_each_in_a_process(names, child, args) -> list:
    """``child(name, args, queue)`` for every name, each in a fresh spawned process (so
    that one query's peak memory is measured alone); the rows they put on the queue."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    rows = []
    for name in names:
        queue = ctx.Queue()
        process = ctx.Process(target=child, args=(name, args, queue))
        process.start()
        rows.append(queue.get())
        process.join()
        print(rows[-1], flush=True)
    return rows
