"""``python -m learnsyn.cli ...``: the ``learnsyn`` command without its installed script."""

import sys

from learnsyn.cli import main

sys.exit(main())
