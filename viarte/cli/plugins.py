"""Commands contributed by other installed packages, through the ``viarte.cli`` entry point group.

Each entry point names a ``register(app)`` callable that adds commands to the root Typer app (or to
its groups, e.g. ``viarte.cli.models.models_app``). The studio repository's dev tooling
(``studio_dev``: ``up``, ``down``, ``status``, ``demo``, ``models pull``) arrives this way, so the SDK
never imports it and an SDK installed on its own has none of it. Those names are known here only to
answer them with how to get them instead of click's bare "No such command".
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

import typer

from viarte.cli.common import context, fail, handled

__all__ = ["DEV_COMMANDS", "ENTRY_POINT_GROUP", "load_plugins"]

ENTRY_POINT_GROUP = "viarte.cli"
# (group path, command name) of what the studio's dev tooling provides.
DEV_COMMANDS: tuple[tuple[tuple[str, ...], str], ...] = (
    ((), "up"), ((), "down"), ((), "status"), ((), "demo"), (("models",), "pull"),
)


def load_plugins(app: typer.Typer) -> None:
    """Registers every installed plugin, then stand-ins for the dev commands none provided."""
    problems: list[str] = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register: Callable[[typer.Typer], None] = entry.load()
        except ImportError as exc:  # declared by an installed distribution whose code cannot import here
            problems.append(f"{entry.value}: {exc}")
            continue
        register(app)
    for path, name in DEV_COMMANDS:
        group = _group(app, path)
        if group is not None and name not in _command_names(group):
            _stand_in(group, " ".join((*path, name)), problems)


def _group(app: typer.Typer, path: tuple[str, ...]) -> typer.Typer | None:
    group: typer.Typer | None = app
    for part in path:
        assert group is not None
        group = next((g.typer_instance for g in group.registered_groups if g.name == part), None)
    return group


def _command_names(group: typer.Typer) -> set[str]:
    names = set()
    for info in group.registered_commands:
        callback_name = info.callback.__name__.replace("_", "-") if info.callback else ""
        names.add(info.name or callback_name)
    return names


def _stand_in(group: typer.Typer, command: str, problems: list[str]) -> None:
    why = f" ({'; '.join(problems)})" if problems else ""

    @group.command(
        command.rsplit(" ", 1)[-1], hidden=True, add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )  # fmt: skip
    @handled
    def missing(ctx: typer.Context) -> None:
        context(ctx)  # a --json run reports the error as JSON too
        fail(
            f"`viarte {command}` is part of the Viarte Studio repository's dev tooling (the studio_dev "
            f"package), which is not installed here{why}: run it from a checkout of the repository "
            "after `pip install -e '.[server,cli]'`"
        )
