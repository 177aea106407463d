"""``python -m weakseg`` is the same as the ``weakseg`` command."""

from weakseg.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
