"""``python -m procman``."""

from procman.cli import main

raise SystemExit(main())
