"""Time vs cost chart of an estimate: colour by GPU, marker by precision, filled on-demand / hollow spot, the Pareto
front, the deadline and budget, and the recommendation labelled. matplotlib is imported only here, only when asked."""

from __future__ import annotations

from pathlib import Path

from gpuplan import render
from gpuplan.errors import GpuplanError
from gpuplan.plan import Estimate, Plan

MARKERS = {"fp32": "o", "mixed": "^"}
WIDE_RANGE = 10  # max/min beyond which an axis goes logarithmic: a 3-minute and a 5-hour plan on one chart


def check_plot_path(path: Path) -> None:
    """Fail before any work is done, not after the table has been printed."""
    if Path(path).suffix.lower() != ".png":
        raise GpuplanError(f"--plot writes a PNG; name the file with .png, got {path}")
    if not Path(path).parent.exists():
        raise GpuplanError(f"--plot {path}: folder {Path(path).parent} does not exist")


def time_unit(seconds: list[float]) -> tuple[str, float]:
    """Minutes while the longest plan is under two hours, hours beyond: (axis word, seconds per unit)."""
    return ("minutes", 60.0) if max(seconds, default=0) < 2 * 3600 else ("hours", 3600.0)


def wide(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) > WIDE_RANGE


def plot_estimate(est: Estimate, path: Path, *, deadline_hours: float | None = None,
                  budget_usd: float | None = None) -> None:
    check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fitting = [p for p in est.plans if p.fits_memory]
    rec = est.recommendation
    extra_s = [deadline_hours * 3600] if deadline_hours is not None else []
    unit, per = time_unit([p.total_seconds for p in fitting] + extra_s)

    def t(seconds: float) -> float:
        return seconds / per

    gpus = list(dict.fromkeys(p.gpu for p in fitting))
    cmap = plt.get_cmap("tab10" if len(gpus) <= 10 else "tab20")
    colour = {g: cmap(i % cmap.N) for i, g in enumerate(gpus)}

    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for p in fitting:
        c = colour[p.gpu]
        ax.scatter([t(p.total_seconds)], [p.cost_usd], marker=MARKERS[p.precision], s=46, alpha=0.85,
                   facecolors=c if p.market == "on-demand" else "none", edgecolors=c, linewidths=1.4)
    front = sorted((p for p in fitting if p.pareto), key=lambda p: p.total_seconds)
    if front:
        ax.plot([t(p.total_seconds) for p in front], [p.cost_usd for p in front], "k--", lw=0.8, alpha=0.6)
        for p in front:
            if rec is None or (p.instance, p.precision, p.market) != (rec.instance, rec.precision, rec.market):
                ax.annotate(_label(p), (t(p.total_seconds), p.cost_usd), fontsize=7, xytext=(5, 3),
                            textcoords="offset points", color="0.25")
    if deadline_hours is not None:
        ax.axvline(t(deadline_hours * 3600), color="tab:red", ls=":", lw=1.3)
        ax.annotate(f"deadline {render.duration(deadline_hours * 3600)}", (t(deadline_hours * 3600), 1),
                    xycoords=("data", "axes fraction"), xytext=(3, -12), textcoords="offset points",
                    fontsize=8, color="tab:red")
    if budget_usd is not None:
        ax.axhline(budget_usd, color="tab:purple", ls=":", lw=1.3)
        ax.annotate(f"budget {render.usd(budget_usd)}", (1, budget_usd), xycoords=("axes fraction", "data"),
                    xytext=(-70, 4), textcoords="offset points", fontsize=8, color="tab:purple")
    if rec is not None:
        x, y = t(rec.total_seconds), rec.cost_usd
        ax.scatter([x], [y], s=260, facecolors="none", edgecolors="red", lw=2, zorder=5)
        ax.annotate(f"recommended: {rec.instance} {rec.precision} {rec.market}\n"
                    f"{render.duration(rec.total_seconds)}, {render.usd(rec.cost_usd)}", (x, y), xytext=(14, -26),
                    textcoords="offset points", fontsize=9, color="red", fontweight="bold",
                    arrowprops={"arrowstyle": "-", "color": "red", "lw": 0.8})
    times = [t(p.total_seconds) for p in fitting]
    costs = [p.cost_usd for p in fitting]
    if wide(times):
        ax.set_xscale("log")
    if wide(costs):
        if min(costs, default=1) > 0:
            ax.set_yscale("log")
        else:  # this machine at $0/h: symlog keeps zero on the chart
            ax.set_yscale("symlog", linthresh=min(c for c in costs if c > 0))
    w = est.workload
    ax.set_xlabel(f"{unit}, start-up + training" + (" (log)" if wide(times) else ""))
    ax.set_ylabel("cost, USD" + (" (log)" if wide(costs) else ""))
    ax.set_title(f"{w.model}: {w.num_examples:,} examples x {w.epochs:g} epochs, batch {w.batch_size}, "
                 f"seq {w.seq_len}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], ls="", marker="s", ms=8, color=colour[g], label=g) for g in gpus]
    handles += [Line2D([], [], ls="", marker=MARKERS[k], ms=7, color="0.3", label=k)
                for k in MARKERS if any(p.precision == k for p in fitting)]
    handles += [Line2D([], [], ls="", marker="o", ms=7, color="0.3", label="on-demand"),
                Line2D([], [], ls="", marker="o", ms=7, markerfacecolor="none", color="0.3", label="spot"),
                Line2D([], [], ls="--", color="k", lw=0.8, label="Pareto front")]
    ax.legend(handles=handles, fontsize=8, ncol=2, loc="upper right")
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as e:
        raise GpuplanError(f"--plot {path}: could not write it ({e.strerror})") from None
    finally:
        plt.close(fig)


def _label(p: Plan) -> str:
    return f"{p.instance} {p.precision}" + (" spot" if p.market == "spot" else "")
