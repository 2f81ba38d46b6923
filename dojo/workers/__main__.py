"""``python -m dojo.workers``: run a simulated team as a process of its own (see :func:`dojo.workers.main`)."""

import sys

from dojo.workers._cli import main

if __name__ == "__main__":
    sys.exit(main())
