"""Time vs cost chart of an estimate, Pareto front marked. matplotlib is imported only here."""

from __future__ import annotations

from pathlib import Path

from gpuplan.errors import GpuplanError
from gpuplan.plan import Estimate, Plan, Recommendation


def check_plot_path(path: Path) -> None:
    """Fail before any work is done, not after the table has been printed."""
    if Path(path).suffix.lower() != ".png":
        raise GpuplanError(f"--plot writes a PNG; name the file with .png, got {path}")
    if not Path(path).parent.exists():
        raise GpuplanError(f"--plot {path}: folder {Path(path).parent} does not exist")


def plot_estimate(est: Estimate, path: Path) -> None:
    check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    def hours(p: Plan | Recommendation) -> float:  # the axis is in hours; plans are in seconds
        return p.total_seconds / 3600

    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    fitting = [p for p in est.plans if p.fits_memory]
    for precision, marker in (("fp32", "o"), ("mixed", "^")):
        for market, color in (("on-demand", "tab:blue"), ("spot", "tab:orange")):
            sel = [p for p in fitting if p.precision == precision and p.market == market]
            if sel:
                ax.scatter([hours(p) for p in sel], [p.cost_usd for p in sel], marker=marker, color=color,
                           alpha=0.7, label=f"{precision}, {market}")
    front = sorted((p for p in fitting if p.pareto), key=lambda p: p.total_seconds)
    if front:
        ax.plot([hours(p) for p in front], [p.cost_usd for p in front], "k--", lw=1, label="Pareto front")
        for p in front:
            ax.annotate(f"{p.instance} {p.precision}", (hours(p), p.cost_usd), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    rec = est.recommendation
    if rec is not None:
        ax.scatter([hours(rec)], [rec.cost_usd], s=200, facecolors="none", edgecolors="red", lw=2, label="recommended")
    w = est.workload
    ax.set_xlabel("hours (start-up + training)")
    ax.set_ylabel("cost, USD")
    ax.set_title(f"{w.model}: {w.num_examples:,} examples x {w.epochs:g} epochs, batch {w.batch_size}, "
                 f"seq {w.seq_len}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as e:
        raise GpuplanError(f"--plot {path}: could not write it ({e.strerror})") from None
    finally:
        plt.close(fig)
