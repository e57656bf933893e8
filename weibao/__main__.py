"""``python -m weibao``: the same as the ``weibao`` command."""

import sys

from weibao.core.cli import main

sys.exit(main())
