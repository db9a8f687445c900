"""`python -m fer_models SUBCOMMAND ...`: the same as the `fer-studio` console script (fer_models.cli)."""
import sys

from fer_models.cli import main

if __name__ == "__main__":
    sys.exit(main())
