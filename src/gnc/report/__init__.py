"""Reports: plots of codes, training runs, UFM sweeps and heads; ``gnc reproduce`` (HTML).

Modules: :mod:`gnc.report.reproduce` (sections, profiles, :func:`~gnc.report.reproduce.reproduce`),
:mod:`gnc.report.html` (self-contained HTML writer), ``plots_*`` (pure plot functions). Nothing is
re-exported here, so that ``gnc.report.reproduce`` stays the module (not its function of the same
name) and importing the package stays cheap.
"""

__all__: list[str] = []
