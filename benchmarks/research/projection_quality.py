"""What the 32-dimensional projections cost the selections: batches against the exact rules.

    python -m benchmarks.research.projection_quality --data-dir ../shared/data

ALLY's default rule draws in the gradient space of a 32-dimensional projection of the
embeddings (always); BADGE and Core-Set work in a projection only on pools of more than
256 MiB of embeddings. For each task (``--tasks``: digits, the 26-class task, MNIST
with a pool of 20,000, Parkinsons), a net (PDCLNet; PDCLRegressor on Parkinsons) is
fitted on ``--labeled`` random rows (each size in turn) and every seed draws:

- the default rule, fast (``dual_weighted_selection``) and exact (the same draws in the
  full embedding space, ``n_components=None``);
- BADGE's selection (classification) in the full space and in the projection;
- Core-Set's greedy k-center in the full space and in the projection;
- a random batch, as a scale.

Reported per task, labeled size and b: the share of the embeddings' second moment the
32 uncentered principal directions hold (fitted on the whole pool); the default rule's
objective (every pool row's draw weight times its squared gradient-space distance to
the nearest pick, in the exact space) of each batch over the mean of the exact rule's
batches (several seeds: the exact rule's own spread is its row ``exact``); the picks a
batch shares with the exact rule's batch of the same seed (``random``: with the exact
batch of another seed); BADGE's k-means cost likewise; Core-Set's covering radius
(embedding space) over the exact greedy's, and the picks both share.
Writes ``projection_quality.csv`` and ``projection_quality.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.reporting import markdown_table, write_atomic, write_csv

TASKS = {"digits": {}, "manyclass": {}, "mnist": {"max_pool": 20000}, "parkinsons": {}}


def _fitted(task, n_labeled, seed, data_dir):
    from benchmarks.harness.datasets import load_dataset
    from benchmarks.harness.estimators import build_estimator

    data = load_dataset(task, data_dir=data_dir, random_state=0, **TASKS[task])
    labeled = np.random.RandomState(seed).choice(data.n_pool, n_labeled, replace=False)
    net = build_estimator("ally", data, epochs=50, seed=seed)
    net.fit(data.X_pool[labeled], data.y_pool[labeled])
    return net, data.X_pool[np.setdiff1d(np.arange(data.n_pool), labeled)], data.task


def _space(net, X_pool, classifier):
    """Exact gradient factors and embeddings of the pool (the reference space)."""
    from modal_ally._seeding import gradient_factors
    from modal_ally.strategies.badge import _class_probabilities

    embeddings = torch.as_tensor(net.embed(X_pool))
    if not classifier:
        return torch.full((embeddings.shape[0], 1), float(np.sqrt(0.5))), embeddings
    return gradient_factors(_class_probabilities(net, embeddings)), embeddings


def _cost(a, e, picks, weights=None):
    from modal_ally._seeding import nearest_centers

    picks = torch.as_tensor(np.asarray(picks))
    d2, _ = nearest_centers(a.double(), e.double(), a[picks].double(), e[picks].double())
    return float(d2.sum() if weights is None else (weights.double() * d2).sum())


def _radius(embeddings, labeled, picks):
    from modal_ally._torch_utils import min_sq_distances

    centers = torch.cat([labeled, embeddings[torch.as_tensor(np.asarray(picks))]])
    return float(min_sq_distances(embeddings, centers).max().sqrt())


def _batches(net, X_pool, budget, seed, classifier):
    """Every variant's picks for one seed."""
    from modal_ally.strategies.ally import dual_weighted_selection, validate_ally_query
    from modal_ally.strategies.badge import badge_query_strategy
    from modal_ally.strategies.coreset import coreset_query_strategy

    def query():
        return validate_ally_query(net, X_pool, budget, strategy="bench", random_state=seed,
                                   n_clusters=None, max_dual=None, skip_top_quantile=None,
                                   cluster_components=32)

    def first(result):
        return np.asarray(result[0] if isinstance(result, tuple) else result)

    out = {"default fast": dual_weighted_selection(query())[0],
           "default exact": dual_weighted_selection(query(), n_components=None)[0],
           "random": np.random.RandomState(seed).choice(len(X_pool), budget, replace=False)}
    for projected in (False, True):
        suffix = " projected" if projected else " exact"
        with _stream_threshold(0 if projected else None):
            if classifier:
                out["badge" + suffix] = first(badge_query_strategy(net, X_pool, budget,
                                                                   random_state=seed))
            out["coreset" + suffix] = first(coreset_query_strategy(net, X_pool, budget,
                                                                   random_state=seed))
    return out


def _stream_threshold(value):
    """Context manager: BADGE's and Core-Set's projection threshold set to ``value``."""
    import contextlib

    from modal_ally.strategies import badge, coreset

    @contextlib.contextmanager
    def patched():
        saved = badge.STREAM_ABOVE_BYTES, coreset.STREAM_ABOVE_BYTES
        badge.STREAM_ABOVE_BYTES = coreset.STREAM_ABOVE_BYTES = 2**62 if value is None \
            else value
        try:
            yield
        finally:
            badge.STREAM_ABOVE_BYTES, coreset.STREAM_ABOVE_BYTES = saved
    return patched()


def measure(task, n_labeled, budget, seeds, data_dir) -> list[dict]:
    """The rows of one task and labeled size."""
    from modal_ally.strategies.ally import draw_weights, validate_ally_query

    net, X_pool, kind = _fitted(task, n_labeled, 0, data_dir)
    classifier = kind == "classification"
    a, e = _space(net, X_pool, classifier)
    query = validate_ally_query(net, X_pool, budget, strategy="bench", random_state=0,
                                n_clusters=None, max_dual=None, skip_top_quantile=None,
                                cluster_components=32)
    weights = draw_weights(query, net.predict_dual(X_pool).astype(np.float64))
    labeled = torch.as_tensor(net.train_embeddings_)
    batches = [_batches(net, X_pool, budget, seed, classifier) for seed in range(seeds)]
    spectrum = torch.linalg.eigvalsh(e.double().T @ e.double()).flip(0)
    energy = float(spectrum[:32].sum() / spectrum.sum())
    reference = {
        "default": np.mean([_cost(a, e, b["default exact"], weights) for b in batches]),
        "badge": np.mean([_cost(a, e, b["badge exact"]) for b in batches])
        if classifier else None}
    rows = []
    for name in ("default fast", "default exact", "badge projected", "badge exact",
                 "coreset projected", "coreset exact", "random"):
        if name.startswith("badge") and not classifier:
            continue
        rule = name.split()[0]
        if rule in ("coreset", "random"):
            radii = [_radius(e, labeled, b[name]) for b in batches]
            exact_radii = [_radius(e, labeled, b["coreset exact"]) for b in batches]
            radius_ratio = np.array(radii) / np.array(exact_radii)
        else:
            radius_ratio = None
        costs = np.array([_cost(a, e, b[name], weights) for b in batches]) / reference["default"]
        badge_costs = None if reference["badge"] is None else \
            np.array([_cost(a, e, b[name]) for b in batches]) / reference["badge"]
        rows.append({
            "task": task, "labeled": n_labeled, "pool": len(X_pool), "dim": e.shape[1],
            "budget": budget, "seeds": seeds, "batch": name,
            "default_cost_ratio": costs.mean(), "default_cost_min": costs.min(),
            "default_cost_max": costs.max(),
            "badge_cost_ratio": None if badge_costs is None else badge_costs.mean(),
            "coreset_radius_ratio": None if radius_ratio is None else radius_ratio.mean(),
            "coreset_shared_picks": None if rule != "coreset" else np.mean(
                [len(set(b[name]) & set(b["coreset exact"])) / budget for b in batches]),
            "energy_32": energy,
            "shared_with_exact_default": None if rule not in ("default", "random") else
            np.mean([len(set(b[name]) & set(batches[(i + 1) % seeds]["default exact"]
                                           if rule == "random" else b["default exact"]))
                     / budget for i, b in enumerate(batches)])})
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()},
              flush=True)
    return rows


def _cell(value, digits=3):
    return "" if value is None else f"{value:.{digits}f}"


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--labeled", default="100,500")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="docs/results/scale")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    start, rows = time.perf_counter(), []
    for task in args.tasks.split(","):
        for n_labeled in (int(x) for x in args.labeled.split(",")):
            rows += measure(task, n_labeled, args.budget, args.seeds, args.data_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"projection_quality_b{args.budget}"
    write_csv(out / f"{stem}.csv", list(rows[0]), rows)
    table = markdown_table(
        ["task", "labeled", "pool", "energy in 32 directions", "batch",
         "default's objective / exact (mean, min-max)", "picks shared with the exact default",
         "BADGE cost / exact BADGE", "Core-Set radius / exact", "picks shared with exact"],
        [[r["task"], r["labeled"], r["pool"], _cell(r["energy_32"], 4), r["batch"],
          f"{_cell(r['default_cost_ratio'])} ({_cell(r['default_cost_min'])}-"
          f"{_cell(r['default_cost_max'])})", _cell(r["shared_with_exact_default"], 2),
          _cell(r["badge_cost_ratio"]), _cell(r["coreset_radius_ratio"]),
          _cell(r["coreset_shared_picks"], 2)]
         for r in rows])
    write_atomic(out / f"{stem}.md", "\n".join(
        [f"# Projected against exact selections, b = {args.budget}, {args.seeds} seeds "
         f"({args.threads} torch thread(s), {time.perf_counter() - start:.0f} s)", ""]
        + table) + "\n")
    return rows


if __name__ == "__main__":
    main()
