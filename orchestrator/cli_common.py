"""What every ``trainbed`` verb shares: the typer app, the consoles, the options several verbs
declare alike, and the one-line forms of errors and warnings (a user never sees a traceback,
and a warning is one line, e.g. a trial whose record could not be read)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import typer
from rich.console import Console

from trainbed.contract.errors import TrainbedError

app = typer.Typer(
    name="trainbed",
    help="Factorial training-performance experiments: plan, run (local or Kubernetes), analyze.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])
#: How every cluster verb picks its namespace, as kubectl does.
NAMESPACE_DEFAULT = "default: the file's metadata.namespace, else the kubeconfig context's"
NAMESPACE_HELP = f"Namespace; {NAMESPACE_DEFAULT}"

# The options several verbs share, declared once so that their flags and help never drift apart.
NamespaceOption = Annotated[str | None, typer.Option("--namespace", "-n", help=NAMESPACE_HELP)]
#: ``spec.kubernetes.queue`` from the command line: the Kueue LocalQueue that admits each trial.
QueueOption = Annotated[
    str | None,
    typer.Option(
        "--queue",
        help="Kueue LocalQueue that admits each trial (kubernetes backend); overrides "
        "spec.kubernetes.queue.",
    ),
]
ParallelOption = Annotated[
    int, typer.Option(help="Trials at once (local); >1 confounds timing responses.")
]
AnalyzeOption = Annotated[bool, typer.Option(help="Write the report at the end.")]
GoalOption = Annotated[
    str | None,
    typer.Option(
        help='What to recommend, e.g. "min time s.t. accuracy >= 0.9" (default: spec.goal).'
    ),
]


def goal_option(text: str | None) -> Any:
    """A --goal line as a GoalSpec (None when not given); a UserError names the syntax."""
    if text is None:
        return None
    from trainbed.contract.errors import UserError
    from trainbed.contract.goal import parse_goal

    try:
        return parse_goal(text)
    except ValueError as err:
        raise UserError(f"--goal: {err}") from None


AllowUnenforcedOption = Annotated[
    bool,
    typer.Option(
        help="Run even where a resource factor's level is not enforced as written here (each "
        "trial's enforcement record then says what held)."
    ),
]


def user_path(path: Path) -> Path:
    """A path the user gave, made absolute once here: nothing below the CLI depends on the
    working directory (worker processes start in their trial's folder)."""
    return path.expanduser().resolve()


def friendly(func: F) -> F:
    """Turn trainbed's own errors into one line and an exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrainbedError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper  # type: ignore[return-value]


def one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for the command line: ``warning: <message>``, one line, without
    the source location that Python prints for a programmer."""
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def install_warning_format() -> None:
    warnings.showwarning = one_line_warning
