"""The picture of ``thrifty distill eval``: coverage against agreement as the bar moves, and
the learning curve by teacher calls (matplotlib, written as PNG, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from thrifty.distill.evaluate import EvalReport, LearningPoint
from thrifty.errors import ProviderUnavailableError


def plot_eval(
    report: EvalReport, learning: Sequence[LearningPoint], path: str | Path, *, title: str = ""
) -> Path:
    """Write the eval plot to ``path`` (PNG); one panel, or two with a learning curve.

    Raises:
        ProviderUnavailableError: matplotlib is not installed (``thrifty[distill]``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ProviderUnavailableError(
            "plots need matplotlib: pip install 'thrifty[distill]'"
        ) from exc
    panels = 2 if learning else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    ax.plot(
        [p.coverage for p in report.curve],
        [p.agreement for p in report.curve],
        color="tab:blue",
        label="as the bar moves",
    )
    ax.scatter(
        [report.coverage],
        [report.agreement],
        color="tab:red",
        zorder=3,
        label=f"the student's bar ({report.threshold:.3f})",
    )
    ax.set(
        xlabel="coverage (share answered by the student)",
        ylabel="agreement with the teacher",
        xlim=(0, 1),
        title=title or "coverage vs agreement",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    if learning:
        ax = axes[0][1]
        calls = [p.teacher_calls for p in learning]
        ax.plot(calls, [p.coverage for p in learning], marker="o", label="coverage")
        ax.plot(calls, [p.agreement for p in learning], marker="s", label="agreement")
        ax.set(
            xscale="log",
            xlabel="teacher calls (training pairs)",
            ylim=(0, 1.02),
            title="learning curve",
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
