"""Figures (matplotlib, headless Agg backend), each written atomically as a PNG.

``plot_frontier``               the Pareto frontier of each device over a cloud of random subnets
``plot_predicted_vs_measured``  predicted vs measured latency with the +-band (default 5 %)
``plot_lut_heatmap``            a LUT per runtime: block latency by stage/position x kernel x expand
``plot_rank_comparison``        the same subnets ranked on several runtimes (slope chart + Kendall tau)

Inputs are plain arrays and the package's records (:class:`~ofa_profile.search.SearchResult`,
:class:`~ofa_profile.encodings.BlockTable`); every function returns the path it wrote.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .atomic import atomic_path
from .errors import OfaProfileError
from .space import get_space

if TYPE_CHECKING:  # pragma: no cover
    from .encodings import BlockTable
    from .search import SearchResult

__all__ = ["plot_frontier", "frontier_panels", "png_text", "plot_predicted_vs_measured", "plot_lut_heatmap",
           "plot_rank_comparison"]

_DPI = 110


def _plt() -> Any:
    import matplotlib
    matplotlib.use("Agg", force=True)
    # labels and titles carry text from files (a LUT's or adapter's device name): draw it as written, never as
    # mathtext (a name such as "$\\x{$" failed at draw time with a ParseFatalException traceback)
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt
    return plt


def _shown(text: Any) -> str:
    """Text from a file as a figure shows it: control and format characters (NUL, newlines, bidi overrides),
    which no font has a glyph for and which made matplotlib warn on stderr, become '?'."""
    import unicodedata
    return "".join("?" if unicodedata.category(c) in ("Cc", "Cf") else c for c in str(text))


def png_text(fig: Any) -> dict[str, str]:
    """The PNG text chunks a figure is saved with: ``Title`` (its title and its panels' titles: what each panel
    shows, the LUT file among it) and ``Description`` (the axis labels), so a PNG names its sources when read by
    a program too."""
    titles = [fig.get_suptitle()]
    labels = []
    for ax in fig.get_axes():
        titles.append(ax.get_title())
        labels += [ax.get_xlabel(), ax.get_ylabel()]

    def uniq(xs: list[str]) -> list[str]:
        return list(dict.fromkeys(x for x in xs if x))
    return {"Title": " | ".join(uniq(titles)), "Description": " | ".join(uniq(labels)), "Software": "ofa-profile"}


def _save(fig: Any, path: str | Path) -> Path:
    """Write the figure as PNG atomically (temp file in the same folder, then rename), its titles and labels also
    as PNG text (:func:`png_text`)."""
    plt = _plt()
    p = Path(path)
    try:
        for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "set_text")):
            if t.get_text() != _shown(t.get_text()):
                t.set_text(_shown(t.get_text()))
        with atomic_path(p, suffix=".tmp.png") as tmp:
            fig.savefig(tmp, dpi=_DPI, format="png", bbox_inches="tight", metadata=png_text(fig))
    finally:
        plt.close(fig)
    return p


def plot_frontier(path: str | Path, frontiers: Mapping[str, Sequence["SearchResult"]],
                  clouds: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None, *,
                  budget_ms: float | None = None, best: Mapping[str, "SearchResult | None"] | None = None,
                  title: str = "", accuracy_label: str = "top-1 accuracy") -> Path:
    """:func:`frontier_panels` written to ``path`` (PNG)."""
    return _save(frontier_panels(frontiers, clouds, budget_ms=budget_ms, best=best, title=title,
                                 accuracy_label=accuracy_label), path)


def frontier_panels(frontiers: Mapping[str, Sequence["SearchResult"]],
                    clouds: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None, *,
                    budget_ms: float | None = None, best: Mapping[str, "SearchResult | None"] | None = None,
                    title: str = "", accuracy_label: str = "top-1 accuracy") -> Any:
    """One panel per latency source (the keys name them: device and LUT file): random subnets (grey), the Pareto
    frontier (line), budget and best subnet.  The panels share one accuracy scale, so devices compare at a glance.
    ``accuracy_label`` names the accuracy on the y axis (e.g. "ImageNet top-1 of OFA's w1.0 supernet")."""
    import numpy as np
    plt = _plt()
    if not frontiers:
        raise OfaProfileError("plot_frontier needs at least one device's frontier")
    n = len(frontiers)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.2), squeeze=False, sharey=True)
    for ax, (dev, front) in zip(axes[0], frontiers.items()):
        if clouds and dev in clouds:
            lat, acc = (np.asarray(v, dtype=float) for v in clouds[dev])
            ax.scatter(lat, np.asarray(acc) * 100, s=6, c="0.7", alpha=0.6, lw=0,
                       label=f"{len(lat):,} random subnets")
        if front:
            fl = np.array([r.latency_ms for r in front])
            fa = np.array([r.accuracy for r in front]) * 100
            ax.step(fl, fa, where="post", color="tab:blue", lw=1.8, label=f"Pareto frontier ({len(front)})")
            ax.plot(fl, fa, "o", color="tab:blue", ms=2.5)
        if budget_ms is not None:
            ax.axvline(budget_ms, color="tab:red", ls="--", lw=1.2, label=f"budget {budget_ms:g} ms")
        b = (best or {}).get(dev)
        if b is not None:
            ax.plot([b.latency_ms], [b.accuracy * 100], "*", color="tab:red", ms=14,
                    label=f"best: {b.accuracy * 100:.2f} % @ {b.latency_ms:.2f} ms")
        ax.set_xlabel("predicted latency (ms)")
        ax.set_ylabel(f"predicted {accuracy_label} (%)", fontsize=8 if len(accuracy_label) > 30 else None)
        ax.set_title(dev, fontsize=9 if len(dev) > 40 else None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    return fig


def plot_predicted_vs_measured(path: str | Path, predicted_ms: Sequence[float], measured_ms: Sequence[float], *,
                               band: float = 0.05, title: str = "", label: str = "subnets") -> Path:
    """Scatter of predicted vs measured latency, the identity line and the +-``band`` region."""
    import numpy as np
    plt = _plt()
    p = np.asarray(predicted_ms, dtype=float)
    m = np.asarray(measured_ms, dtype=float)
    if p.shape != m.shape or p.size == 0:
        raise OfaProfileError(f"predicted and measured latencies must be non-empty and of one length "
                              f"({p.size} vs {m.size})")
    within = float((np.abs(p / m - 1.0) <= band).mean())
    lo, hi = float(min(p.min(), m.min())) * 0.95, float(max(p.max(), m.max())) * 1.05
    fig, ax = plt.subplots(figsize=(5, 5))
    xs = np.linspace(lo, hi, 50)
    ax.fill_between(xs, xs * (1 - band), xs * (1 + band), color="tab:green", alpha=0.18,
                    label=f"+-{band * 100:g} % band")
    ax.plot(xs, xs, color="k", lw=1)
    ax.scatter(m, p, s=10, c="tab:blue", alpha=0.7, lw=0, label=f"{label} (n={len(m)})")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title or f"{within * 100:.1f} % within +-{band * 100:g} %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_lut_heatmap(path: str | Path, tables: Mapping[str, "BlockTable"], resolution: int | None = None, *,
                     title: str = "", unit: str = "ms") -> Path:
    """One heat map per runtime: rows = stage x (first block | later blocks), columns = kernel x expand,
    cell = block latency (``unit``) at ``resolution`` (default: the largest the table holds)."""
    import numpy as np
    plt = _plt()
    if not tables:
        raise OfaProfileError("plot_lut_heatmap needs at least one runtime's table")
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 5.0), squeeze=False, layout="constrained")
    for ax, (name, t) in zip(axes[0], tables.items()):
        sp = get_space(t.space)
        r = resolution if resolution is not None else max(t.resolutions)
        if r not in t.resolutions:
            raise OfaProfileError(f"table {name} has no resolution {r}; it holds {t.resolutions[0]}..{t.resolutions[-1]}")
        ri = t.resolutions.index(r)
        rows, labels = [], []
        for s in range(sp.n_stages):
            for b, tag in ((0, "first"), (1, "later")):
                i = s * sp.max_depth + b
                rows.append(t.block[ri, i].reshape(-1))
                labels.append(f"stage {s + 1} {tag}")
        M = np.array(rows)
        cols = [f"k{k} e{e}" for k in sp.kernels for e in sp.expands]
        im = ax.imshow(M, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(cols)), cols, rotation=60, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for (yy, xx), v in np.ndenumerate(M):
            ax.text(xx, yy, f"{v:.2g}", ha="center", va="center", fontsize=6,
                    color="w" if v < (M.min() + M.max()) / 2 else "k")
        ax.set_title(f"{name} @ r={r} ({unit})")
        fig.colorbar(im, ax=ax, shrink=0.9, label=unit)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_rank_comparison(path: str | Path, latencies_ms: Mapping[str, Sequence[float]], *,
                         labels: Sequence[str] | None = None, title: str = "", note: str = "") -> Path:
    """Slope chart: each line is one subnet, its rank (1 = fastest) on each runtime; the title gives the
    Kendall tau between neighbouring runtimes; ``note`` (e.g. what each runtime's figures time) goes above it."""
    import numpy as np
    from scipy.stats import kendalltau
    plt = _plt()
    names = list(latencies_ms)
    if len(names) < 2:
        raise OfaProfileError("plot_rank_comparison needs latencies from at least two runtimes")
    L = np.array([np.asarray(latencies_ms[k], dtype=float) for k in names])
    if L.ndim != 2 or L.shape[1] < 2:
        raise OfaProfileError("every runtime needs the latencies of the same >= 2 subnets")
    ranks = L.argsort(axis=1).argsort(axis=1) + 1
    n = L.shape[1]
    fig, ax = plt.subplots(figsize=(2.2 * len(names) + 2, max(4.0, 0.18 * n + 1.5)))
    cmap = plt.get_cmap("coolwarm")
    for j in range(n):
        ax.plot(range(len(names)), ranks[:, j], "-o", color=cmap(ranks[0, j] / n), lw=1.2, ms=3.5, alpha=0.85)
        if labels is not None and n <= 40:
            ax.text(len(names) - 1 + 0.05, ranks[-1, j], labels[j], fontsize=6, va="center")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("latency rank (1 = fastest)")
    ax.invert_yaxis()
    taus = [f"{names[i]}-{names[i + 1]}: {kendalltau(L[i], L[i + 1]).statistic:.2f}" for i in range(len(names) - 1)]
    ax.set_title(title or "Kendall tau " + ", ".join(taus), fontsize=9)
    if note:
        fig.suptitle(note, fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
