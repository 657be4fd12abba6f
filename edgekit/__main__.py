"""``python -m edgekit``: the ``edgekit`` command."""

from edgekit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
