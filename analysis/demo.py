"""The demo's closing figures: latency CDF, learning curve and the comparison table.

``make demo`` trains one federation (one training seed), so its figures show one run
against the heuristics on the same held-out episodes; intervals need more seeds
(``python -m scripts.run_experiment experiment=small_demo``). The analysis stack
(pandas, rliable) is the ``paper`` extra, imported here only when called, so the
demo itself runs without it.
"""

from __future__ import annotations

from pathlib import Path

DEMO_REPS = 1000
"""Bootstrap resamples of the demo's heuristic rows (one run has no interval)."""


def write_demo_figures(run_dir: Path, out: Path | None = None) -> str:
    """Write the figures and ``results.md`` of a run folder; say where they are."""
    try:
        import pandas as pd

        from analysis import figures
        from analysis.collect import collect
        from analysis.report import write_report
        from analysis.summary import learning_curves, summary_table
    except ImportError as err:
        return f"(no figures: {err.name} is missing; pip install -e '.[paper]')"
    run_dir = Path(run_dir)
    out = out or run_dir / "figures"
    collected = collect(run_dir)
    summary = summary_table(collected, reps=DEMO_REPS)
    curves = learning_curves(collected, reps=DEMO_REPS)
    written = figures.latency_cdf(collected, out)
    written += figures.learning_curves(curves, out)
    written += figures.interval_plot(summary, out)
    summary.to_csv(out / "summary.csv", index=False, lineterminator="\n")
    report = write_report(
        out / "results.md",
        collected,
        summary,
        pd.DataFrame(),
        pd.DataFrame(),
        {"plot": f"python -m scripts.plot_results --input {run_dir} --out {out}"},
        written,
    )
    pngs = [p for p in written if p.suffix == ".png"]
    lines = [f"Figures ({len(pngs)} PNG + PDF) in {out}:"]
    lines += [f"  {p.name}" for p in pngs]
    lines.append(f"Comparison table: {report}")
    return "\n".join(lines)
