"""``twin sensors``: live readings from MQTT (``listen``), the latest per sensor, the rejected messages."""

from __future__ import annotations

from typing import Optional

import typer

from twin_core.cli._common import JSON_OPT, QUIET_OPT, STORE_ARG, emit

sub = typer.Typer(help="Live sensor readings: listen to an MQTT feed, show the latest, list what was refused.",
                  no_args_is_help=True)


def _broker(value: str) -> str:
    from twin_core.sensor_feed import parse_broker

    try:
        parse_broker(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _topic(value: str) -> str:
    from twin_core.sensor_feed import check_topic

    try:
        return check_topic(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@sub.command("listen")
def listen(
    target: str = STORE_ARG,
    broker: str = typer.Option("127.0.0.1:1883", "--broker", callback=_broker, help="MQTT broker host:port."),
    topic: str = typer.Option("rongtwin/sensors/+", "--topic", callback=_topic,
                              help="Subscription; the last level of each topic is the sensor id."),
    qos: int = typer.Option(1, "--qos", min=0, max=2, help="MQTT QoS of the subscription."),
    client_id: Optional[str] = typer.Option(None, "--client-id",
                                            help="A fixed client id: the broker keeps the session (and the "
                                                 "messages sent meanwhile) while the listener is away."),
    max_messages: Optional[int] = typer.Option(None, "--max-messages", min=1, help="Stop after N messages."),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=0.0, help="Stop after S seconds."),
    quiet: bool = QUIET_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Store readings published on MQTT: payload a number or {"value": 1.2, "time": "...+08:00"}.

    Readings are stored every second (or 500 messages); a message that cannot be read or is refused goes to
    the table sensor_rejects (see `twin sensors rejects`). Prints the counts every 10 s unless --quiet;
    Ctrl-C stores what is held and stops.
    """
    from cim.store import open_store
    from twin_core.sensor_feed import MqttFeed

    def report(line: str) -> None:
        if not quiet:
            typer.echo(line, err=True)

    with open_store(target) as store:
        feed = MqttFeed(store, broker=broker, topic=topic, qos=qos, client_id=client_id, report=report)
        counts = feed.run(max_messages=max_messages, seconds=seconds)
    emit(counts.to_dict(), as_json, human=f"sensors listen: {counts.line()} in {counts.seconds:.1f} s")


@sub.command("latest")
def latest(target: str = STORE_ARG, as_json: bool = JSON_OPT) -> None:
    """Each sensor's latest reading and its status (ok / warn / alarm / unknown)."""
    from cim.sensors import sensor_states
    from cim.store import open_store

    with open_store(target) as store:
        df = sensor_states(store)
    cols = [c for c in ("sensor_id", "kind", "unit", "value", "time", "status", "warn_threshold", "alarm_threshold")
            if c in df.columns]
    rows = df[cols].to_dict(orient="records")
    if not rows:
        human = "(no sensors: the twin has no 'sensors' layer)"
    else:
        human = "\n".join(
            f"{r['sensor_id']:<10} {r['status']:<8} "
            f"{'-' if r['value'] is None else format(r['value'], 'g'):>10} {r.get('unit') or '':<6} {r['time'] or '-'}"
            for r in rows)
    emit(rows, as_json, human=human)


@sub.command("rejects")
def rejects(target: str = STORE_ARG, limit: int = typer.Option(50, "--limit", min=1, help="Show the newest N."),
            as_json: bool = JSON_OPT) -> None:
    """The messages the listener could not read or whose reading was refused, newest first, with why."""
    from cim.sensors import read_rejects
    from cim.store import open_store

    with open_store(target) as store:
        df = read_rejects(store, limit=limit)
    rows = df.to_dict(orient="records")
    human = "\n".join(f"{r['received_at']}  {r['topic']}  {r['payload'][:60]!r}  {r['reason']}" for r in rows)
    emit(rows, as_json, human=human or "(no rejected messages)")


def register(app: typer.Typer) -> None:
    app.add_typer(sub, name="sensors")
