"""``python -m ogpu``: the same command line as ``ogpu-ipfs``."""

import sys

from .ipfs import main

if __name__ == "__main__":
    sys.exit(main())
