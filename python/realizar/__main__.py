"""``python -m realizar``: the same as the ``realizar`` console script."""

from .cli import main

raise SystemExit(main())
