"""``python -m gnc ...`` (and ``torchrun ... -m gnc margins ...``): the ``gnc`` command line."""

import sys

from gnc.cli import main

if __name__ == "__main__":
    sys.exit(main())
