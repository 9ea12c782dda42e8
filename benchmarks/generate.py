"""Generative mode on scikit-learn's digits: the paper's Figure 1.

Trains a PDCLNet on a labeled subset of the digits, then runs
:func:`modal_ally.generate_informative` from a few pool digits (one per
class, as far as the pool allows) and writes a grid of snapshots: one row per sample,
one column per snapshot step, each titled with its predicted dual variable.

Usage::

    python benchmarks/generate.py --n-samples 5 --n-steps 100 --step-size 0.05
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=5,
                        help="pool digits to start from (rows of the grid)")
    parser.add_argument("--n-steps", type=int, default=100, help="gradient-ascent steps")
    parser.add_argument("--step-size", type=float, default=0.05,
                        help="Euclidean length of each step (pixels in [0, 1])")
    parser.add_argument("--n-snapshots", type=int, default=6,
                        help="columns of the grid: evenly spaced steps, first and last included")
    parser.add_argument("--epochs", type=int, default=50, help="PDCL training epochs")
    parser.add_argument("--n-train", type=int, default=500, help="labeled digits to train on")
    parser.add_argument("--epsilon", type=float, default=0.2, help="constraint level (nats)")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (small networks run fastest on one)")
    parser.add_argument("--out", type=Path, default=Path("results/generate"),
                        help="output directory")
    args = parser.parse_args(argv)
    for name in ("n_samples", "n_steps", "epochs", "n_train", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.n_snapshots < 2:
        parser.error("--n-snapshots must be >= 2")
    if not args.step_size > 0:
        parser.error("--step-size must be > 0")
    return args


def pick_starts(y_pool, n_samples, rng):
    """Pool indices: one digit per class in turn (random within a class), then repeats."""
    by_class = [rng.permutation(np.flatnonzero(y_pool == c)) for c in np.unique(y_pool)]
    order = rng.permutation(len(by_class))
    picks = []
    for round_ in range(max(len(rows) for rows in by_class)):
        for c in order:
            if round_ < len(by_class[c]) and len(picks) < n_samples:
                picks.append(int(by_class[c][round_]))
    return np.array(picks)


def plot_grid(result, steps, predicted, path):
    """Rows = samples, columns = snapshot steps; titles give the predicted lambda."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_samples = result.trajectory.shape[1]
    fig, axes = plt.subplots(n_samples, len(steps), squeeze=False,
                             figsize=(1.6 * len(steps), 1.75 * n_samples))
    for i in range(n_samples):
        for j, step in enumerate(steps):
            ax = axes[i, j]
            ax.imshow(result.trajectory[step, i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"λ̂={result.dual[step, i]:.2f} ({predicted[step, i]})", fontsize=8)
            if i == 0:
                ax.text(0.5, 1.32, f"step {step}", transform=ax.transAxes, ha="center",
                        fontsize=9, fontweight="bold")
    fig.suptitle("Gradient ascent on the predicted dual variable "
                 "(title: predicted λ, predicted class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    import torch
    from sklearn.datasets import load_digits

    from modal_ally import PDCLNet, generate_informative

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.random_state)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    order = rng.permutation(X.shape[0])
    if args.n_train >= X.shape[0]:
        raise SystemExit(f"--n-train must be below {X.shape[0]} (the rest is the pool)")
    train, pool = order[:args.n_train], order[args.n_train:]

    start = time.perf_counter()
    net = PDCLNet(max_epochs=args.epochs, epsilon=args.epsilon,
                  random_state=args.random_state).fit(X[train], y[train])
    fit_time = time.perf_counter() - start
    starts = pool[pick_starts(y[pool], min(args.n_samples, pool.size), rng)]
    result = generate_informative(net, X[starts], n_steps=args.n_steps,
                                  step_size=args.step_size, bounds=(0.0, 1.0))
    steps = np.unique(np.linspace(0, args.n_steps, args.n_snapshots).round().astype(int))
    predicted = np.stack([net.predict(result.trajectory[k]) for k in range(args.n_steps + 1)])

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "generate_digits.png"
    plot_grid(result, steps, predicted, path)
    np.savez_compressed(args.out / "generate_digits.npz", trajectory=result.trajectory,
                        dual=result.dual, start_index=starts, start_label=y[starts],
                        predicted=predicted)
    print(f"trained on {args.n_train} digits for {args.epochs} epochs in {fit_time:.1f} s "
          f"(training multipliers: mean {net.lambdas_.mean():.3f}, "
          f"{(net.lambdas_ > 0).mean():.0%} > 0)")
    for i, index in enumerate(starts):
        print(f"pool digit {index} (label {y[index]}): predicted lambda "
              f"{result.dual[0, i]:.3f} -> {result.dual[-1, i]:.3f}, predicted class "
              f"{predicted[0, i]} -> {predicted[-1, i]}")
    print(f"wrote {path.resolve()}")
    return path


if __name__ == "__main__":
    main()
