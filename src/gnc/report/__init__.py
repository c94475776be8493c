"""Reports: the HTML page of ``gnc reproduce`` and every figure, as pure functions.

Plot functions (``plots_codes``, ``plots_heads``, ``plots_train``, ``plots_ufm``) take plain numbers
or records and return a matplotlib figure; :func:`save_figure` / :func:`figure_png` are the one
place a figure becomes a PNG; :func:`render_report` turns section views into one HTML page. Nothing
here computes a result or imports :mod:`gnc.study`.
"""

from gnc.report.figures import figure_png, save_figure
from gnc.report.html import render_report

__all__ = ["figure_png", "render_report", "save_figure"]
