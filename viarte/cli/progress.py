"""Rich live progress for jobs and transfers (used by the CLI and the demo)."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from viarte.jobs import JobProgress, Stage

__all__ = ["JobProgressView", "TransferProgress"]


class _Eta(ProgressColumn):
    """The server's ETA when it sent one, else Rich's own estimate from the bar's speed."""

    def __init__(self) -> None:
        super().__init__()
        self._fallback = TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        if eta is not None:
            minutes, seconds = divmod(int(eta + 0.5), 60)
            return Text(f"eta {minutes}:{seconds:02d}", style="progress.remaining")
        return self._fallback.render(task)


class JobProgressView:
    """Two live rows per job: the overall fraction (with ETA) and the current stage's i/n."""

    def __init__(self, console: Console, title: str) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=32),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}", style="dim"),
            _Eta(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._title = title
        self._overall: TaskID | None = None
        self._stages: dict[Stage, TaskID] = {}
        self._current: Stage | None = None

    def __enter__(self) -> JobProgressView:
        self._progress.__enter__()
        self._overall = self._progress.add_task(f"[bold]{self._title}", total=100, detail="", eta=None)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.__exit__(t, e, tb)

    def update(self, update: JobProgress) -> None:
        assert self._overall is not None
        detail = update.message or (f"#{update.queue_position} in queue" if update.queue_position else "")
        self._progress.update(
            self._overall, completed=round(100 * (1.0 if update.terminal else update.fraction)), eta=update.eta_seconds,
            detail=f"{update.state.name.lower()}",
        )
        counts = update.counter()
        stage = update.stage
        if stage is not Stage.UNSPECIFIED and stage is not self._current:
            self._finish_current()
            if stage not in self._stages:  # one row per stage, even when a job comes back to one
                self._stages[stage] = self._progress.add_task(
                    f"  {stage.label}", total=counts[1] if counts else None, detail=detail, eta=None
                )
            self._current = stage
        task = self._stages.get(stage)
        if task is not None:
            fps = f"{update.fps:.1f} fps" if update.fps else ""
            if counts is not None:
                self._progress.update(task, total=counts[1], completed=counts[0], detail=fps or detail, eta=update.eta_seconds)
            else:
                self._progress.update(task, detail=detail)
        if update.terminal and update.state.name == "SUCCEEDED":
            self._finish_current()

    def _finish_current(self) -> None:
        """A stage that is over shows as complete (a stage without counts gets a 1/1 bar)."""
        task = self._stages.get(self._current) if self._current is not None else None
        if task is not None:
            total = next(t.total for t in self._progress.tasks if t.id == task) or 1
            self._progress.update(task, total=total, completed=total)


class TransferProgress:
    """A byte-progress bar for uploads and downloads; ``callback`` fits the SDK's progress hook."""

    def __init__(self, console: Console, label: str) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=32), DownloadColumn(), TransferSpeedColumn(),
            console=console,
        )
        self._label = label
        self._task: TaskID | None = None

    def __enter__(self) -> TransferProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task(self._label, total=None)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.__exit__(t, e, tb)

    @property
    def callback(self) -> Callable[[int, int], None]:
        def hook(done: int, total: int) -> None:
            assert self._task is not None
            self._progress.update(self._task, completed=done, total=total or None)

        return hook
