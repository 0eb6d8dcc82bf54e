"""``python -m learnsyn.degeneracy <experiment> ...``: the degeneracy command on its own."""

import sys

from learnsyn.degeneracy.cli import main

if __name__ == "__main__":
    sys.exit(main())
