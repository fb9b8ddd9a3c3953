"""``workbench loop run | history``: the continual-learning loop against a running service."""

from __future__ import annotations

from typing import Any, cast

import typer

app = typer.Typer(help="Continual learning: triggers, stateful retraining, shadow, canary, bandit routing.",
                  no_args_is_help=True)  # fmt: skip


@app.command()
def run(
    service_url: str = typer.Option("http://127.0.0.1:8000", "--service", help="The running `workbench serve`."),
    token_file: str = typer.Option(None, help="Admin token file (default <WORKBENCH_HOME>/serve.token)."),
    feedback_topic: str = typer.Option("feedback", help="Topic the service logs impressions and feedback to."),
    trigger: str = typer.Option("drift", help="drift (ADWIN on the champion's loss), performance or time."),
    every_minutes: float = typer.Option(60.0, min=0.1, help="The time trigger's period."),
    warmup_lists: int = typer.Option(300, min=0, help="Champion lists before the trigger starts watching."),
    retrain: str = typer.Option("stateful", help="stateful (continue the champion) or stateless (from scratch)."),
    train_examples: int = typer.Option(300, min=10, help="Labelled lists after a firing to train on."),
    shadow_examples: int = typer.Option(300, min=10, help="Labelled lists in shadow before the gate."),
    gate: str = typer.Option("not_worse", help="not_worse or better: what the shadow comparison must show."),
    canary_share: float = typer.Option(0.1, min=0.01, max=0.5, help="The canary's share of traffic."),
    canary_lists: int = typer.Option(100, min=10, help="Lists the canary serves before it becomes an arm."),
    crown_at: float = typer.Option(0.95, min=0.5, max=0.9999, help="P(best) at which an arm becomes champion."),
    min_arm_lists: int = typer.Option(300, min=10, help="Lists each arm serves in the race before a crowning."),
    attribution_s: float = typer.Option(30.0, min=0.1, help="Seconds a click still counts for its list."),
) -> None:
    """Watch the service's feedback, train candidates when the trigger fires and walk them to champion."""
    from workbench.errors import WorkbenchError
    from workbench.learning.loop import Loop, LoopConfig

    if trigger not in ("drift", "performance", "time") or retrain not in ("stateful", "stateless") \
            or gate not in ("not_worse", "better"):
        raise WorkbenchError("--trigger is drift|performance|time, --retrain stateful|stateless, "
                             "--gate not_worse|better")
    config = LoopConfig(service_url=service_url, token_file=token_file, feedback_topic=feedback_topic,
                        trigger=cast(Any, trigger), every_minutes=every_minutes, warmup_lists=warmup_lists,
                        retrain=cast(Any, retrain), train_examples=train_examples, shadow_examples=shadow_examples,
                        gate=cast(Any, gate), canary_share=canary_share, canary_lists=canary_lists,
                        crown_at=crown_at, min_arm_lists=min_arm_lists, attribution_s=attribution_s)  # fmt: skip
    loop = Loop(config)
    typer.echo(f"loop on {service_url}: champion {loop.champion}, trigger {trigger}, {retrain} retraining "
               "(Ctrl-C stops)")  # fmt: skip
    try:
        loop.run(on_event=lambda e: typer.echo(str(e)))
    except KeyboardInterrupt:
        pass


@app.command()
def history(
    service: str = typer.Option("recommender", help="The service's routing name."),
    ref: str = typer.Option(None, help="Only this version, e.g. session_ranker/3."),
) -> None:
    """Every routing change: which version entered which stage, when and why."""
    import time

    from workbench.serving.routing import RoutingStore

    changes = RoutingStore().history(service, ref)
    if not changes:
        typer.echo("no routing changes yet")
    for c in changes:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.at))
        typer.echo(f"{when}  gen {c.generation:<4} {c.stage:<9} {c.ref:<22} {c.reason}")
