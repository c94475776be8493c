"""``python -m gnc.codes {build,recipe,recheck,recertify,merge,summary}``: the catalogue."""

import sys

from gnc.codes.catalogue import main

sys.exit(main())
