"""Parameters for the tests of the streamed certification's two tile sweeps."""

from __future__ import annotations

import pytest

from gnc.geometry import _compiled as compiled

#: Tensor operations, and the compiled kernels where numba is.
SWEEPS = [
    False,
    pytest.param(
        True, marks=pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed")
    ),
]
