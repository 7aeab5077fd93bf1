"""``viarte``: the Viarte Studio command line (Typer + Rich) over the Python SDK.

Typer and Rich come with the ``[cli]`` extra (``pip install 'viarte-studio[cli]'``); the SDK itself
does not need them. One module per command group (``auth``, ``users``, ``api_keys``, ``assets``,
``models``, ``generate``, ``render``, ``jobs``, ``projects``, ``assistant``, ``usage``, ``webhooks``), what they share in
:mod:`viarte.cli.common` (context, output, exit codes), and the commands of other installed packages
(the studio repository's dev mesh and demo) through :mod:`viarte.cli.plugins`.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__all__ = ["EXIT_CODES", "app", "main"]

if TYPE_CHECKING:
    from viarte.cli.commands import EXIT_CODES, app

# What the [cli] extra brings (with their own dependencies): a missing one is an install problem.
_CLI_DEPENDENCIES = {"typer", "rich", "click", "shellingham", "markdown_it", "pygments", "mdurl"}


def _hoist_json(argv: list[str]) -> list[str]:
    """``--json`` is a global option; accept it anywhere on the line (before any ``--``)."""
    if "--json" not in argv:
        return argv
    stop = argv.index("--") if "--" in argv else len(argv)
    if "--json" not in argv[:stop]:
        return argv
    rest = [a for i, a in enumerate(argv) if not (a == "--json" and i < stop)]
    return ["--json", *rest]


def main(argv: list[str] | None = None) -> None:
    """The ``viarte`` entry point (Typer in standalone mode: usage errors exit 2)."""
    try:
        from viarte.cli.commands import app
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _CLI_DEPENDENCIES:
            raise
        print(
            f"viarte: the command line needs {exc.name}, which is not installed; "
            "install the CLI with: pip install 'viarte-studio[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    args = _hoist_json(list(sys.argv[1:] if argv is None else argv))
    app(args=args, prog_name="viarte")


def __getattr__(name: str) -> Any:
    # Lazily, so that `viarte.cli:main` can report a missing [cli] extra instead of failing on import.
    if name in ("app", "EXIT_CODES"):
        return getattr(importlib.import_module("viarte.cli.commands"), name)
    raise AttributeError(f"module 'viarte.cli' has no attribute {name!r}")
