"""Does the dual head rank the pool? Head variants against the model's own uncertainty.

For every task, seed and labeled-set size ``n`` (a uniform draw from the pool, as the
loops' initial sets), one PDCLNet (PDCLRegressor for regression; the package defaults,
50 epochs) is fitted on the labeled rows. Every dual-head variant is then fitted on the
*same* training embeddings and multipliers (only the head differs), and the rest of the
pool is scored. The benchmark knows every label, so each score is compared (Spearman) with
what the pool points are worth to the current model, their true loss ``l(f(x), y)``:

- the predicted multiplier of every variant of :data:`VARIANTS`;
- ``1 - margin``, the entropy and BADGE's gradient norm ``|p - onehot(yhat)| |e|``
  (for a regressor: the embedding norm ``|e|``, BADGE's regression embedding, and the
  distance to the nearest labeled embedding, Core-Set's score).

``--own`` adds the dual head's own target on a small pool: ``--own-points`` pool points
are drawn (seeded); each in turn is added to the labeled set with its label, the net is
refitted (same seed), and the point's own multiplier is recorded (last iterate and
averaged over the epochs). Each variant's prediction for those points (from the fit
without them) is compared with their own multipliers (Spearman over the points).

Writes ``dual_head.csv`` (one row per fit), ``dual_head.md`` (mean ± std over seeds) and,
with ``--own``, ``own.csv`` / ``own.md`` to ``--out``.

Example::

    python -m benchmarks.research.dual_head --tasks digits,mnist --data-dir ../shared/data --seeds 5
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from benchmarks.harness.datasets import load_dataset
from benchmarks.harness.estimators import build_estimator
from benchmarks.harness.loop import initial_indices
from benchmarks.harness.registry import parse_names
from benchmarks.research.dual_update import DUAL_UPDATES, dual_update_of
from modal_ally._torch_utils import as_tensor, eval_mode, torch_threads
from modal_ally.dual_head import fit_dual_head, predict_dual
from modal_ally.modules import ConditionalDualHead, DualHead
from modal_ally.strategies.badge import _class_probabilities

__all__ = ["Variant", "VARIANTS", "measure", "main"]


@dataclass(frozen=True)
class Variant:
    """One way to fit the dual head (the net and its multipliers are shared)."""

    target: str = "last"  # "last": lambdas_ (the paper's); "mean": lambdas_mean_
    conditional: str = "none"  # "class": one output per class; "loss": reads -log p_c
    inputs: str = "embedding"  # or "embedding+proba"
    loss: str = "mse"  # or "rank"
    validation: float = 0.0  # held-out fraction for early stopping
    epochs: int = 100
    head: tuple = ()  # ConditionalDualHead parameters
    features: str = "embedding"  # or "layers": every hidden layer's output (Learning Loss)


_ADD = (("form", "additive"), ("slot", "loss"))
_MLP = (("form", "mlp"),)  # ConditionalDualHead's defaults

#: The screened variants (``paper``: the paper's head, what ``method="paper"`` reads;
#: ``loss-mlp``: the pool head ``PDCLNet`` fits by default).
VARIANTS = {
    "paper": Variant(),
    "mean": Variant(target="mean"),
    "class": Variant(conditional="class"),
    "proba-in": Variant(inputs="embedding+proba"),
    "rank": Variant(loss="rank"),
    "val": Variant(validation=0.2, epochs=300),
    "loss-logmlp": Variant(conditional="loss", head=(("form", "mlp"), ("slot", "logloss"))),
    "loss-mlp": Variant(conditional="loss", head=_MLP),
    "loss-mlp-val": Variant(conditional="loss", validation=0.2, epochs=300, head=_MLP),
    "loss-mlp-e30": Variant(conditional="loss", epochs=30, head=_MLP),
    "loss-mlp-e300": Variant(conditional="loss", epochs=300, head=_MLP),
    "loss-mlp-mean": Variant(target="mean", conditional="loss", head=_MLP),
    "loss-only": Variant(conditional="loss", head=(("form", "loss"),)),
    "loss-mono": Variant(conditional="loss", head=(("form", "monotone"),)),
    "loss-add": Variant(conditional="loss", head=_ADD),
    "loss-add-mean": Variant(target="mean", conditional="loss", head=_ADD),
    "loss-add-rank": Variant(conditional="loss", loss="rank", head=_ADD),
    "loss-add-val": Variant(conditional="loss", validation=0.2, epochs=300, head=_ADD),
    "layers": Variant(features="layers"),
    "loss-mlp-layers": Variant(conditional="loss", head=_MLP, features="layers"),
}

#: Per task: load_dataset arguments and the labeled-set sizes.
TASKS = {
    "digits": (dict(), (100, 300, 900)),
    "manyclass": (dict(max_pool=5000, max_test=1000), (100, 300, 1000)),
    "mnist": (dict(max_pool=20000, max_test=1000), (100, 300, 1000)),
    "parkinsons": (dict(max_test=500), (100, 300, 1000)),
    "mnist-cnn": (dict(max_pool=3000, max_test=1000), (100, 300, 1000)),
}


def _spearman(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _classifier(net):
    """Embeddings -> class probabilities (None for a regressor)."""
    if getattr(net, "_task", "classification") == "regression":
        return None
    return lambda block: _class_probabilities(net, block)


@torch.no_grad()
def layer_features(net, X):
    """Every hidden layer's output for the rows ``X``, side by side (the features of
    Learning Loss, Yoo and Kweon, CVPR 2019): the output of each activation of the
    backbone, a convolution's averaged over its spatial positions."""
    with eval_mode(net.module_) as module:
        h = as_tensor(X, net.device)
        parts = []
        for layer in module.backbone:
            h = layer(h)
            if isinstance(layer, (torch.nn.ReLU, torch.nn.GELU, torch.nn.Tanh)):
                parts.append(h.flatten(2).mean(dim=2) if h.dim() > 2 else h)
        if not parts:  # no activation at the top level: the embedding alone
            parts = [h.reshape(h.shape[0], -1)]
        return torch.cat(parts, dim=1).float().cpu()


def fit_variant(net, variant: Variant, *, seed, train_features=None):
    """A dual head fitted by ``variant`` on ``net``'s training rows: (head, scaling).

    ``train_features``: what the head reads for the training rows (default: their
    embeddings); the class probabilities always come from the embeddings."""
    embeddings = torch.as_tensor(net.train_embeddings_)
    classifier = _classifier(net)
    targets = net.lambdas_ if variant.target == "last" else net.lambdas_mean_
    labels = probs = None
    conditional = "none"
    if classifier is not None:
        probs = classifier(embeddings).cpu()
        labels = torch.as_tensor(net._train_labels)
        conditional = variant.conditional
    if train_features is not None:
        embeddings = train_features
    width = embeddings.shape[1] + (probs.shape[1] if probs is not None
                                   and variant.inputs != "embedding" else 0)
    torch.manual_seed(seed)
    if conditional == "loss":
        head = ConditionalDualHead(width, **dict(variant.head))
    else:
        head = DualHead(width, output_dim=probs.shape[1] if conditional == "class" else 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaling = fit_dual_head(head, embeddings, torch.as_tensor(np.asarray(targets)),
                                epochs=variant.epochs, lr=net.dual_head_lr,
                                batch_size=net.dual_head_batch_size, seed=seed,
                                labels=None if conditional == "none" else labels, probs=probs,
                                conditional=conditional, loss=variant.loss,
                                validation=variant.validation, inputs=variant.inputs)
    return head, scaling


def variant_scores(net, embeddings, variants, *, seed, layers=None):
    """{variant: predicted lambda of ``embeddings``} for ``net``.

    ``layers``: ``(training rows' features, the scored rows' features)`` of
    :func:`layer_features`, for the variants that read every hidden layer. The class
    probabilities come from ``embeddings``, once for every variant."""
    out = {}
    classifier = _classifier(net)
    probs = None if classifier is None else classifier(embeddings).cpu()
    for name, variant in variants.items():
        train, scored = layers if variant.features == "layers" else (None, embeddings)
        head, scaling = fit_variant(net, variant, seed=seed, train_features=train)
        out[name] = predict_dual(head, scored, scaling, chunk_size=4096, device="cpu",
                                 classifier=classifier, probs=probs).numpy()
    return out


def _layers(data, labeled, rest, net, variants):
    """The training and scored rows' :func:`layer_features`, where a variant reads them."""
    if not any(v.features == "layers" for v in variants.values()):
        return None
    return layer_features(net, data.X_pool[labeled]), layer_features(net, data.X_pool[rest])


def uncertainty_scores(net, embeddings, train_embeddings):
    """Label-free scores of the model's own uncertainty (higher: worth more)."""
    e_norm = embeddings.norm(dim=1).double().numpy()
    classifier = _classifier(net)
    if classifier is None:
        ref = torch.as_tensor(train_embeddings)
        d2 = torch.cdist(embeddings, ref).min(dim=1).values.double().numpy()
        return {"embedding_norm": e_norm, "distance_to_labeled": d2}
    p = classifier(embeddings).cpu().double().numpy()
    top2 = np.sort(p, axis=1)[:, -2:]
    a = p.copy()
    a[np.arange(len(a)), a.argmax(axis=1)] -= 1
    return {"margin": top2[:, 0] - top2[:, 1] + 1.0,  # 1 - margin, the higher the worse
            "entropy": -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1),
            "gradnorm": np.linalg.norm(a, axis=1) * e_norm}


def _fit(data, rows, seed, dual_update="ascent"):
    net = build_estimator("ally", data, epochs=50, seed=seed)
    with warnings.catch_warnings(), dual_update_of(dual_update):
        warnings.simplefilter("ignore")
        net.fit(data.X_pool[rows], data.y_pool[rows])
    if data.task == "classification":
        net._train_labels = np.asarray(data.y_pool[rows], dtype=np.int64)
    return net


def measure(data, seed, n, variants, dual_update="ascent"):
    """One fit: Spearman with the pool's true loss of every score."""
    labeled = initial_indices(data.n_pool, n, seed)
    rest = np.setdiff1d(np.arange(data.n_pool), labeled)
    start = time.perf_counter()
    net = _fit(data, labeled, seed, dual_update)
    fit_s = time.perf_counter() - start
    X_rest, y_rest = data.X_pool[rest], data.y_pool[rest]
    embeddings = torch.as_tensor(net.embed(X_rest))
    loss = net.per_sample_loss(X_rest, y_rest)
    row = {"task": data.name, "seed": seed, "n_labels": n, "fit_s": round(fit_s, 3),
           "active_fraction": float((net.lambdas_ > 0).mean())}
    scores = {**variant_scores(net, embeddings, variants, seed=seed,
                               layers=_layers(data, labeled, rest, net, variants)),
              **uncertainty_scores(net, embeddings, net.train_embeddings_)}
    for name, values in scores.items():
        row[f"rho_{name}"] = _spearman(values, loss)
    return row


def own_multipliers(data, seed, n, variants, n_points, dual_update="ascent"):
    """Spearman of each variant's prediction with the points' own multipliers."""
    labeled = initial_indices(data.n_pool, n, seed)
    rest = np.setdiff1d(np.arange(data.n_pool), labeled)
    rng = np.random.default_rng([seed, n, 0x0A11])
    points = np.sort(rng.choice(rest, size=min(n_points, rest.shape[0]), replace=False))
    net = _fit(data, labeled, seed, dual_update)
    embeddings = torch.as_tensor(net.embed(data.X_pool[points]))
    scores = {**variant_scores(net, embeddings, variants, seed=seed,
                               layers=_layers(data, labeled, points, net, variants)),
              **uncertainty_scores(net, embeddings, net.train_embeddings_)}
    own_last, own_mean = [], []
    for j in points:
        rows = np.append(labeled, j)  # the added point is the last row
        refit = _fit(data, rows, seed, dual_update)
        own_last.append(float(refit.lambdas_[-1]))
        own_mean.append(float(refit.lambdas_mean_[-1]))
    row = {"task": data.name, "seed": seed, "n_labels": n, "n_points": len(points),
           "own_active": float((np.asarray(own_last) > 0).mean())}
    for name, values in scores.items():
        row[f"last_{name}"] = _spearman(values, own_last)
        row[f"mean_{name}"] = _spearman(values, own_mean)
    return row


def summary_markdown(frame, prefixes, title):
    """Mean ± std over seeds of every ``<prefix>_<score>`` column, per task and size."""
    lines = [f"# {title}", ""]
    for prefix in prefixes:
        cols = [c for c in frame.columns if c.startswith(prefix + "_")]
        names = [c[len(prefix) + 1:] for c in cols]
        lines += [f"## {prefix}", "", "| task | labels | seeds | " + " | ".join(names)
                  + " |", "|---|---|---|" + "---|" * len(names)]
        for (task, n), group in frame.groupby(["task", "n_labels"], sort=False):
            cells = [("–" if group[c].isna().all() else
                      f"{group[c].mean():.2f} ± {group[c].std(ddof=1):.2f}") for c in cols]
            lines.append(f"| {task} | {n} | {len(group)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.research.dual_head",
                                     description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--tasks", default="digits,manyclass,mnist,parkinsons")
    add("--data-dir", default=None)
    add("--seeds", type=int, default=5)
    add("--sizes", default=None, help="labeled-set sizes (default: per task, 100 to 1,000)")
    add("--variants", default=",".join(VARIANTS))
    add("--own", action="store_true",
        help="also rank the points' own multipliers (refits per point)")
    add("--own-task", default="digits")
    add("--own-sizes", default="100,300")
    add("--own-points", type=int, default=30)
    add("--skip-pool", action="store_true", help="only the --own measurement")
    add("--dual-update", choices=tuple(DUAL_UPDATES), default="ascent",
        help="the nets' dual step: the package's (ascent) or with "
        "restarts when a constraint is met (restart)")
    add("--threads", type=int, default=1)
    add("--out", default="docs/results/dual_head")
    return parser


def _run_pool(args, variants, out, start):
    """Every variant's ranking of the pool (``dual_head.csv``, ``dual_head.md``)."""
    rows = []
    for task in parse_names(args.tasks):
        kwargs, sizes = TASKS[task]
        if args.sizes:
            sizes = [int(s) for s in parse_names(args.sizes)]
        data = load_dataset(task, data_dir=args.data_dir, random_state=0, **kwargs)
        for n in sizes:
            for seed in range(args.seeds):
                rows.append(measure(data, seed, n, variants, args.dual_update))
                print({k: (round(v, 3) if isinstance(v, float) else v)
                       for k, v in rows[-1].items()}, flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "dual_head.csv", index=False, float_format="%.5g")
    footer = (f"\n`python -m benchmarks.research.dual_head --tasks {args.tasks} --seeds "
              f"{args.seeds} --dual-update {args.dual_update}`: "
              f"{time.perf_counter() - start:.0f} s, torch "
              f"{torch.get_num_threads()} thread(s).\n")
    (out / "dual_head.md").write_text(summary_markdown(
        frame, ["rho"], "Spearman with the pool's true loss (mean ± std over "
        "seeds)") + footer)
    print(summary_markdown(frame, ["rho"], "pool"))
    return frame


def _run_own(args, variants, out, start):
    """Every variant's ranking of the points' own multipliers (``own.csv``, ``own.md``)."""
    data = load_dataset(args.own_task, data_dir=args.data_dir, random_state=0,
                        **TASKS[args.own_task][0])
    own = []
    for n in (int(s) for s in parse_names(args.own_sizes)):
        for seed in range(args.seeds):
            own.append(own_multipliers(data, seed, n, variants, args.own_points,
                                       args.dual_update))
            print(own[-1], flush=True)
    frame = pd.DataFrame(own)
    frame.to_csv(out / "own.csv", index=False, float_format="%.5g")
    title = (f"Spearman with the points' own multipliers ({args.own_task}, "
             f"{args.own_points} pool points per seed and size, each added alone "
             "and the net refitted; `last`: the last iterate, `mean`: averaged over "
             "the epochs)")
    (out / "own.md").write_text(summary_markdown(frame, ["last", "mean"], title)
                                + f"\n{time.perf_counter() - start:.0f} s in all.\n")
    print(summary_markdown(frame, ["last", "mean"], title))
    return frame


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [v for v in parse_names(args.variants) if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    variants = {v: VARIANTS[v] for v in parse_names(args.variants)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = {"pool": None, "own": None}
    with torch_threads(args.threads):
        if not args.skip_pool:
            result["pool"] = _run_pool(args, variants, out, start)
        if args.own:
            result["own"] = _run_own(args, variants, out, start)
    print(f"wall {time.perf_counter() - start:.0f} s, torch threads {args.threads}")
    return result


if __name__ == "__main__":
    main()
