"""MLflow entry point `review`: parses the parameters and calls dc_mlops (no logic here)."""
import sys

from dc_mlops.cli import main

if __name__ == "__main__":
    sys.exit(main(["review", *sys.argv[1:]]))
