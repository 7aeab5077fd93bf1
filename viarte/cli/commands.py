"""The root app with every command group registered (in the order ``--help`` lists them), then the
commands of installed plugins (:mod:`viarte.cli.plugins`)."""

# ruff: noqa: I001 (the import order is the order of the commands in --help)

from __future__ import annotations

# Imported for their side effect: each module registers its commands on the root app.
from viarte.cli import auth, api_keys, assets, jobs, projects, assistant, users, models, generate, training, render, usage, webhooks  # noqa: F401
from viarte.cli.common import EXIT_CODES, app
from viarte.cli.plugins import load_plugins

__all__ = ["EXIT_CODES", "app"]

load_plugins(app)
