"""``python -m gnc.codes {build,recheck,recertify,summary}``: maintain the code catalogue."""

import sys

from gnc.codes.catalogue import main

sys.exit(main())
