"""``python -m apactors`` is the ``apactors`` command."""

import sys

from apactors.cli import main

sys.exit(main())
