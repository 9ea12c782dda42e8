"""What a learning curve is scored by: the test metric of a round and the curve summaries."""

from __future__ import annotations

import numpy as np

__all__ = ["TARGET_FRACTION", "curves", "evaluate", "labels_to_reach",
           "learning_curve_area", "mean_std", "metric_info", "paired_difference",
           "resolved", "sign_test", "summarize"]

#: Targets reached "97 % of the final metric" (the paper's labels-needed measure).
TARGET_FRACTION = 0.97


def metric_info(task: str) -> tuple[str, bool]:
    """``(metric name, higher is better)``: test accuracy, or test MSE for regression."""
    return ("accuracy", True) if task == "classification" else ("mse", False)


def paired_difference(a, b, higher: bool) -> tuple[float, float, int]:
    """Per-seed ``a - b`` of two aligned arrays: ``(mean, std (ddof=1; 0 for one seed),
    seeds on which a is better)``, better meaning higher, or lower when ``higher`` is
    False (MSE)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    std = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    better = int((diff > 0).sum() if higher else (diff < 0).sum())
    return float(diff.mean()), std, better


def resolved(mean: float, std: float, n: int, level: float = 0.05) -> bool:
    """Whether a paired difference (``mean``, ``std`` with ddof=1, over ``n`` seeds) is
    told apart from zero by a two-sided paired t-test at ``level``: ``|mean| / (std /
    sqrt(n))`` above Student's t quantile with ``n - 1`` degrees of freedom. One seed
    resolves nothing; a difference of zero spread resolves when its mean is not zero."""
    from scipy.stats import t as student_t

    if n < 2 or mean == 0:
        return False
    if std == 0:
        return True
    return abs(mean) / (std / np.sqrt(n)) > student_t.ppf(1 - level / 2, n - 1)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided p-value of the sign test: ``wins`` against ``losses`` (ties left out) under
    "either is as likely", the binomial with p = 1/2. 1.0 when there is nothing to count."""
    from scipy.stats import binomtest

    if wins < 0 or losses < 0:
        raise ValueError(f"counts must be non-negative, got {wins} and {losses}")
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5).pvalue)


def evaluate(estimator, X_test, y_test, task: str) -> float:
    """Test accuracy (classification) or mean squared error in the target's units."""
    y_pred = np.asarray(estimator.predict(X_test))
    if task == "classification":
        return float(np.mean(y_pred == np.asarray(y_test)))
    diff = y_pred.astype(np.float64).ravel() - np.asarray(y_test, dtype=np.float64).ravel()
    return float(np.mean(diff * diff))


def learning_curve_area(n_labels, metric) -> float:
    """Area under the curve (trapezoid over n_labels) divided by the label range.

    A mean metric over the labeling budget; a one-point curve gives its metric.
    """
    n = np.asarray(n_labels, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if n.size == 1 or n[-1] == n[0]:
        return float(m.mean())
    trapezoid = getattr(np, "trapezoid", None) or np.trapz
    return float(trapezoid(m, n) / (n[-1] - n[0]))


def labels_to_reach(n_labels, metric, target, *, higher_is_better=True) -> float:
    """The first n_labels whose metric reaches ``target`` (NaN if none does)."""
    m = np.asarray(metric, dtype=np.float64)
    hit = m >= target if higher_is_better else m <= target
    return float(np.asarray(n_labels)[np.argmax(hit)]) if hit.any() else float("nan")


def _target(final, higher_is_better, fraction=TARGET_FRACTION):
    return fraction * final if higher_is_better else final / fraction


def mean_std(values) -> tuple[float, float]:
    """Mean and standard deviation (ddof=1; 0 for one value) of the finite values.

    ``(nan, nan)`` when none is finite; None counts as missing.
    """
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def curves(rows) -> dict:
    """``{strategy: {seed: (n_labels, metric)}}`` in round order, strategies in
    first-seen order."""
    grouped: dict[str, dict[int, list]] = {}
    for row in sorted(rows, key=lambda r: (r["seed"], r["round"])):
        grouped.setdefault(row["strategy"], {}).setdefault(row["seed"], []).append(row)
    order = list(dict.fromkeys(row["strategy"] for row in rows))
    return {name: {seed: (np.array([r["n_labels"] for r in curve], dtype=float),
                          np.array([r["metric"] for r in curve], dtype=float))
                   for seed, curve in sorted(grouped[name].items())} for name in order}


def _strategy_summary(name, per_seed, strategy_rows, *, higher, best_target):
    own = [labels_to_reach(n, m, _target(m[-1], higher), higher_is_better=higher)
           for n, m in per_seed.values()]
    common = [labels_to_reach(n, m, best_target, higher_is_better=higher)
              for n, m in per_seed.values()]
    aulc = mean_std([learning_curve_area(n, m) for n, m in per_seed.values()])
    final = mean_std([m[-1] for _, m in per_seed.values()])
    own_stats, common_stats = mean_std(own), mean_std(common)
    return {
        "strategy": name, "n_seeds": len(per_seed),
        "last_round": max(r["round"] for r in strategy_rows),
        "final_n_labels": int(max(n[-1] for n, _ in per_seed.values())),
        "aulc_mean": aulc[0], "aulc_std": aulc[1],
        "final_mean": final[0], "final_std": final[1],
        "labels_to_97_mean": own_stats[0], "labels_to_97_std": own_stats[1],
        "labels_to_97_best_mean": common_stats[0], "labels_to_97_best_std": common_stats[1],
        "labels_to_97_best_reached": int(np.isfinite(common).sum()),
        "fit_s_mean": mean_std([r["fit_s"] for r in strategy_rows])[0],
        "query_s_mean": mean_std([r["query_s"] for r in strategy_rows])[0],
    }


def summarize(rows, task: str) -> list[dict]:
    """Per strategy, mean and standard deviation over seeds of the curve's summaries.

    - ``aulc``: :func:`learning_curve_area` (a mean metric over the labeling budget);
    - ``final``: the metric after the last round;
    - ``labels_to_97``: per seed, the first n_labels whose metric reaches 97 % of the final
      metric *of the same curve* (the paper's measure; for MSE, lower is better, the first
      n_labels with ``mse <= final / 0.97``);
    - ``labels_to_97_best``: the same against one common target, 97 % of the best
      strategy's mean final metric (comparable across strategies: a strategy with a poor
      final metric reaches its own 97 % early); seeds that never reach it are left out of
      the mean, and ``labels_to_97_best_reached`` counts those that do;
    - ``fit_s_mean``, ``query_s_mean``: mean seconds per fit and per query.

    Standard deviations are over seeds (ddof=1; 0 for one seed).
    """
    metric_name, higher = metric_info(task)
    per_strategy = curves(rows)
    finals = {name: mean_std([m[-1] for _, m in per_seed.values()])[0]
              for name, per_seed in per_strategy.items()}
    best = (max if higher else min)(finals.values()) if finals else float("nan")
    best_target = _target(best, higher)
    return [{"metric_name": metric_name, **_strategy_summary(
                name, per_seed, [r for r in rows if r["strategy"] == name],
                higher=higher, best_target=best_target)}
            for name, per_seed in per_strategy.items()]
