"""``python -m classify``: see :mod:`classify.cli`."""
from .cli import main

raise SystemExit(main())
