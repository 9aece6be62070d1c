"""`python -m tinygen.cli`: the `tinygen` command without the console script."""
import sys

from tinygen.cli import main

sys.exit(main())
