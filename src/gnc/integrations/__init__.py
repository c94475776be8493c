"""Adapters for the PyTorch ecosystem (optional extras; import the submodule you need).

- :mod:`gnc.integrations.torchmetrics`: :class:`~gnc.integrations.torchmetrics.GNCMetric`, a
  ``torchmetrics.Metric`` (``pip install 'gnc[torchmetrics]'``).
- :mod:`gnc.integrations.lightning`: :class:`~gnc.integrations.lightning.GNCCallback`, a
  Lightning callback that logs GNC per epoch (``pip install 'gnc[lightning]'``).

Nothing is imported here, so ``import gnc`` never needs the extras.
"""

__all__: list[str] = []
