"""Allow ``python -m upsagent``."""

from upsagent.cli.main import main

raise SystemExit(main())
