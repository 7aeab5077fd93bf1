"""``python -m viarte.cli``: the CLI."""

from viarte.cli import main

if __name__ == "__main__":
    main()
