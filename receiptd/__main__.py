"""`python -m receiptd …` runs the same CLI as the `receiptd` console script."""

from server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
