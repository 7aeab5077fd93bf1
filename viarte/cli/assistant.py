"""``viarte assistant``: Magic Prompt and the editor assistant."""

from __future__ import annotations

from typing import Any

import typer

from viarte.cli.common import app, context, handled

assistant_app = typer.Typer(help="Magic Prompt and the editor assistant.", no_args_is_help=True)
app.add_typer(assistant_app, name="assistant")


@assistant_app.command("status")
@handled
def assistant_status(ctx: typer.Context) -> None:
    """Whether the assistant is configured."""
    c = context(ctx)
    st = c.client().assistant.status()
    c.emit(st, lambda: c.out.print(f"available ({st.model})" if st.available else f"unavailable: {st.reason}"))


@assistant_app.command("enhance")
@handled
def assistant_enhance(ctx: typer.Context, idea: str, max_words: int = 0) -> None:
    """Magic Prompt: turn a short idea into a detailed prompt."""
    c = context(ctx)
    answer = c.client().assistant.enhance_prompt(idea, max_words=max_words)
    c.emit(answer, lambda: c.out.print(f"{answer.prompt}\n[dim]negative: {answer.negative_prompt}[/]"))


@assistant_app.command("chat")
@handled
def assistant_chat(ctx: typer.Context, message: str) -> None:
    """Ask the assistant; the answer streams in."""
    c = context(ctx)
    parts: list[str] = []
    actions: list[Any] = []
    for msg in c.client().assistant.chat([("user", message)]):
        kind = msg.WhichOneof("payload")
        if kind == "delta":
            parts.append(msg.delta)
            if not c.json:
                c.out.print(msg.delta, end="")
        elif kind == "action":
            actions.append(msg.action)
    if not c.json:
        c.out.print()
        for action in actions:
            c.out.print(f"[cyan]proposed:[/] {action.summary}")
    else:
        c.emit({"answer": "".join(parts), "actions": actions})
