"""``python -m taskrunner.cli``: the console script without an installed entry point."""

import sys

from taskrunner.cli.main import main

sys.exit(main())
