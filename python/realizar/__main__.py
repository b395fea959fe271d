"""``python -m realizar``: the same as the ``realizar`` console script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
