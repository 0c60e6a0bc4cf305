"""The ``trainbed`` verbs that talk to a cluster: submit, status, logs, collect and the
controller. Registered on the one app of :mod:`.cli_common`; :mod:`.cli` imports this module so
that ``trainbed --help`` lists them after the local verbs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainbed.orchestrator.cli_common import (
    NAMESPACE_DEFAULT,
    NamespaceOption,
    QueueOption,
    app,
    console,
    friendly,
    user_path,
)


@app.command()
@friendly
def submit(
    file: Annotated[Path, typer.Argument(help="Campaign file (YAML).")],
    namespace: NamespaceOption = None,
    queue: QueueOption = None,
) -> None:
    """Create (or update) the Campaign resource in the cluster."""
    from trainbed.orchestrator.kube.verbs.commands import submit as _submit

    _submit(user_path(file), namespace=namespace, queue=queue, console=console)


@app.command()
@friendly
def status(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    namespace: NamespaceOption = None,
    watch: Annotated[bool, typer.Option("--watch", help="Follow until done.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    trial: Annotated[str | None, typer.Option("--trial", help="Show one trial's record.")] = None,
) -> None:
    """Show a Campaign's progress: counts, what blocks it, trials in flight, failures."""
    from trainbed.orchestrator.kube.adapter.namespaces import resolve_namespace
    from trainbed.orchestrator.kube.verbs.status_command import status as _status

    _status(
        name,
        namespace=resolve_namespace(namespace),
        watch=watch,
        as_json=as_json,
        trial=trial,
        console=console,
    )


@app.command()
@friendly
def logs(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    trial: Annotated[str, typer.Argument(help="Trial ID.")],
    namespace: NamespaceOption = None,
    rank: Annotated[int, typer.Option()] = 0,
) -> None:
    """Print a trial's worker log."""
    from trainbed.orchestrator.kube.adapter.namespaces import resolve_namespace
    from trainbed.orchestrator.kube.verbs.commands import logs as _logs

    _logs(name, trial, namespace=resolve_namespace(namespace), rank=rank, console=console)


@app.command()
@friendly
def collect(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    out: Annotated[Path, typer.Option(help="Local results directory.")],
    namespace: NamespaceOption = None,
) -> None:
    """Copy a campaign's results directory from the cluster's PVC."""
    from trainbed.orchestrator.kube.adapter.namespaces import resolve_namespace
    from trainbed.orchestrator.kube.verbs.commands import collect as _collect

    _collect(name, out=user_path(out), namespace=resolve_namespace(namespace), console=console)


@app.command()
@friendly
def controller(
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help=f"Namespace to watch; {NAMESPACE_DEFAULT}."),
    ] = None,
    default_queue: Annotated[
        str | None,
        typer.Option(
            "--default-queue",
            help="Kueue LocalQueue of every campaign whose spec.kubernetes.queue names none.",
        ),
    ] = None,
) -> None:
    """Run the Campaign controller (in the cluster, or from a laptop)."""
    from trainbed.orchestrator.kube.adapter.namespaces import resolve_namespace
    from trainbed.orchestrator.kube.control.controller import run_controller

    run_controller(namespace=resolve_namespace(namespace), default_queue=default_queue)
