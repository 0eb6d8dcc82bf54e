"""``python -m learnsyn.degeneracy <experiment> ...``: the degeneracy command on its own."""

import sys

from learnsyn.cli.degeneracy import main  # the entry point of `python -m`

if __name__ == "__main__":
    sys.exit(main())
