"""Turn stored runs into results people can act on, from the records alone (no torch):
`summary` groups runs into methods and ranks them, `render` writes the terminal table,
Markdown and CSV, `plots` draws the source documents' figures; `write_report` does all three.
"""

from lrlab.report.plots import plot_loss_curves, plot_per_epoch, write_plots
from lrlab.report.render import (
    ReportFiles,
    markdown,
    markdown_table,
    rows,
    run_rows,
    summary_rows,
    terminal_table,
    write_csv,
    write_report,
)
from lrlab.report.summary import (
    Method,
    Spread,
    Summary,
    by_task,
    method_labels,
    methods,
    smooth_curve,
    summarize,
)

__all__ = [
    "Method",
    "ReportFiles",
    "Spread",
    "Summary",
    "by_task",
    "markdown",
    "markdown_table",
    "method_labels",
    "methods",
    "plot_loss_curves",
    "plot_per_epoch",
    "rows",
    "run_rows",
    "smooth_curve",
    "summarize",
    "summary_rows",
    "terminal_table",
    "write_csv",
    "write_plots",
    "write_report",
]
