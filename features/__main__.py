"""``python -m features``: see :mod:`features.cli`."""
from .cli import main

raise SystemExit(main())
