"""Allow ``python -m lictools``."""

from lictools.cli.main import main

if __name__ == "__main__":
    main()
