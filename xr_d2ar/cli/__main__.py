"""``python -m xr_d2ar.cli``: the ``d2ar`` command line without the console script."""

import sys

from xr_d2ar.cli import main

sys.exit(main())
