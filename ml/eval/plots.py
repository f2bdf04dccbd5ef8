"""Plots that compare models, logged as MLflow artifacts."""

from __future__ import annotations

from pathlib import Path


def plot_metric_curves(doc: dict, path: Path, metrics: tuple[str, ...] = ("ndcg", "recall")) -> Path:
    """Metric@K curves of every model, one panel per (view, metric), from a metrics.json document.

    Returns:
        The PNG path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(doc["ks"])
    views = list(next(iter(doc["models"].values()))["views"]) if doc["models"] else []
    fig, axes = plt.subplots(
        len(views), len(metrics), figsize=(5 * len(metrics), 3.6 * max(len(views), 1)), squeeze=False
    )
    for r, view in enumerate(views):
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            for name, entry in doc["models"].items():
                overall = entry["views"][view]["overall"]
                ax.plot(ks, [overall[f"{metric}@{k}"] for k in ks], marker="o", label=name)
            ax.set_title(f"{metric}@K ({view} view, test period)")
            ax.set_xlabel("K")
            ax.set_xticks(ks)
            ax.grid(alpha=0.3)
    return _save(fig, axes, path, legend=bool(views))


def plot_history_buckets(doc: dict, path: Path, metric: str = "ndcg@10") -> Path:
    """``metric`` against history length (the document's ``history_buckets``), one line per model, per view.

    An effect on short histories shows as a curve instead of one noisy cell; each bucket's label
    carries its number of users.

    Returns:
        The PNG path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = doc.get("history_buckets") or []
    views = list(next(iter(doc["models"].values()))["views"]) if doc["models"] else []
    fig, axes = plt.subplots(1, max(len(views), 1), figsize=(5.5 * max(len(views), 1), 3.8), squeeze=False)
    for c, view in enumerate(views):
        ax = axes[0][c]
        first = next(iter(doc["models"].values()))["views"][view]
        labels = [f"{b.removeprefix('history_')}\n({first.get(b, {}).get('users', 0)})" for b in buckets]
        for name, entry in doc["models"].items():
            ax.plot(
                range(len(buckets)),
                [entry["views"][view].get(b, {}).get(metric) for b in buckets],
                marker="o",
                label=name,
            )
        ax.set_xticks(range(len(buckets)), labels)
        ax.set_title(f"{metric} by distinct items in history ({view} view)")
        ax.set_xlabel("items in history (users)")
        ax.grid(alpha=0.3)
    return _save(fig, axes, path, legend=bool(views))


def plot_backtest(doc: dict, path: Path, metric: str = "ndcg@10") -> Path:
    """A backtest document drawn two ways, per view: ``metric`` at every cut, and by history length
    (pooled over cuts, with 95% interval bars), one line per model.

    Returns:
        The PNG path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = doc["aggregate"]
    views = list(next(iter(agg.values()))) if agg else []
    buckets = doc.get("history_buckets") or []
    fig, axes = plt.subplots(2, max(len(views), 1), figsize=(6 * max(len(views), 1), 7.2), squeeze=False)
    for c, view in enumerate(views):
        top, bottom = axes[0][c], axes[1][c]
        for model, views_doc in agg.items():
            cell = views_doc[view]["overall"][metric]
            cuts, means = list(cell["per_cut"]), list(cell["per_cut"].values())
            bounds = [cell.get("per_cut_interval", {}).get(c, [m, m]) for c, m in zip(cuts, means)]
            yerr = [[m - b[0] for m, b in zip(means, bounds)], [b[1] - m for m, b in zip(means, bounds)]]
            top.errorbar(cuts, means, yerr=yerr, marker="o", capsize=2, label=model)
            cells = [views_doc[view].get(b, {}).get(metric) or {} for b in buckets]
            means = [cell.get("mean", float("nan")) for cell in cells]
            low = [m - cell.get("ci_low", m) for m, cell in zip(means, cells)]
            high = [cell.get("ci_high", m) - m for m, cell in zip(means, cells)]
            bottom.errorbar(range(len(buckets)), means, yerr=[low, high], marker="o", capsize=3, label=model)
        top.set_title(f"{metric} per cut ({view} view, 95% intervals)")
        top.tick_params(axis="x", labelrotation=45, labelsize=7)
        first = next(iter(agg.values()))[view]
        labels = [f"{b.removeprefix('history_')}\n({first.get(b, {}).get('users', 0)})" for b in buckets]
        bottom.set_xticks(range(len(buckets)), labels)
        bottom.set_title(f"{metric} by items in history, all cuts ({view} view, 95% intervals)")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    return _save(fig, axes, path, legend=bool(views))


def _save(fig, axes, path: Path, legend: bool) -> Path:
    """Legend on the first panel, tight layout, PNG at ``path`` (folders made), figure closed."""
    import matplotlib.pyplot as plt

    if legend:
        axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
