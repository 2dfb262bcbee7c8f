"""``python -m avperceive ...``: the same command line as the ``avperceive`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
