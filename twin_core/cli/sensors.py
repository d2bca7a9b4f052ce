"""``twin sensors``: live readings from MQTT (``listen``), the latest per sensor, the rejected messages."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer

from twin_core.cli._common import JSON_OPT, QUIET_OPT, STORE_ARG, emit
from twin_core.sensor_feed import SILENCE_S  # the module imports only the standard library at its top

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


def _username(value: Optional[str]) -> Optional[str]:
    if value is not None and (not value.strip() or "\x00" in value):
        raise typer.BadParameter("the user name must be non-empty text")
    return value


def _version(value: str) -> str:
    from twin_core.sensor_feed import MQTT_VERSIONS

    if value not in MQTT_VERSIONS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(MQTT_VERSIONS)}")
    return value


@sub.command("listen")
def listen(
    target: str = STORE_ARG,
    broker: str = typer.Option("127.0.0.1", "--broker", callback=_broker,
                               help="MQTT broker host[:port]; the port is 1883, or 8883 with TLS, when left out."),
    topic: str = typer.Option("rongtwin/sensors/+", "--topic", callback=_topic,
                              help="Subscription; the last level of each topic is the sensor id."),
    qos: int = typer.Option(1, "--qos", min=0, max=2,
                            help="MQTT QoS of the subscription; 1 keeps each message on the broker until stored."),
    client_id: Optional[str] = typer.Option(None, "--client-id",
                                            help="A fixed client id: the broker keeps the session (the messages "
                                                 "sent meanwhile, and any received but not stored when the listener "
                                                 "was killed) while the listener is away."),
    username: Optional[str] = typer.Option(None, "--username", callback=_username,
                                           help="Log in to the broker as this user."),
    password_file: Optional[Path] = typer.Option(
        None, "--password-file", dir_okay=False,
        help="File whose first line is the broker password (chmod 600). Or set TWIN_MQTT_PASSWORD; there is no "
             "--password: ps would show it."),
    tls: bool = typer.Option(False, "--tls", help="Speak TLS, checking the broker's certificate and host name."),
    ca_file: Optional[Path] = typer.Option(None, "--ca-file", dir_okay=False,
                                           help="PEM file of the CA that signed the broker's certificate (implies "
                                                "--tls; default: the system's CAs)."),
    cert_file: Optional[Path] = typer.Option(None, "--cert-file", dir_okay=False,
                                             help="Client certificate (PEM) for a broker that asks for one (implies "
                                                  "--tls)."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", dir_okay=False,
                                            help="The client certificate's key (PEM, unencrypted; chmod 600)."),
    mqtt_version: str = typer.Option("5", "--mqtt-version", callback=_version,
                                     help="5 (acknowledges a message once stored) or 3.1.1 (on arrival, for an "
                                          "older broker)."),
    max_messages: Optional[int] = typer.Option(None, "--max-messages", min=1, help="Stop after N messages."),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=0.0, help="Stop after S seconds."),
    silence: float = typer.Option(SILENCE_S, "--silence", min=0.0,
                                  help="Say so (even with --quiet) when no message has come for S seconds while "
                                       "subscribed: a broker ACL that denies the topic delivers nothing. Set it to "
                                       "the feed's longest quiet spell; 0: never."),
    quiet: bool = QUIET_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Store readings published on MQTT: payload a number or {"value": 1.2, "time": "...+08:00"}.

    Readings are stored every second (or 500 messages); a message that cannot be read or is refused goes to
    the table sensor_rejects (see `twin sensors rejects`): so does a retained message without a "time" (the
    broker hands it over at every start; its arrival is not when it was measured) and one whose sensor and time
    are a stored reading's with another value. The same reading again is not stored twice ("already stored").
    Prints the counts every 10 s unless --quiet;
    Ctrl-C stores what is held and stops. Its state (live, silent, refused, disconnected, stopped) is kept
    for the map and `twin sensors feeds`.

    With QoS 1 (default) over MQTT 5, a message is acknowledged to the broker only once stored: with
    --client-id, what a killed listener had received but not stored comes again at its next start. A broker
    login takes --username and the password from TWIN_MQTT_PASSWORD or --password-file;
    TLS takes --tls / --ca-file (and --cert-file, --key-file for a client certificate). There is no switch to
    skip the check of the broker's certificate.
    """
    from cim.store import open_store
    from twin_core.sensor_feed import MqttFeed, broker_password

    def report(line: str) -> None:
        if not quiet:
            typer.echo(line, err=True)

    def warn(line: str) -> None:  # a line that needs a person: the feed silent, a subscription refused
        typer.echo(line, err=True)

    try:
        password = broker_password(password_file)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--password-file' / TWIN_MQTT_PASSWORD") from None
    if password is not None and not username:
        src = f"--password-file {password_file}" if password_file is not None else "TWIN_MQTT_PASSWORD"
        raise typer.BadParameter(f"a password ({src}) needs a user name", param_hint="'--username'")
    if key_file is not None and cert_file is None:
        raise typer.BadParameter("--key-file is the key of a client certificate: give --cert-file too",
                                 param_hint="'--cert-file'")
    with open_store(target) as store:
        feed = MqttFeed(store, broker=broker, topic=topic, qos=qos, client_id=client_id, username=username,
                        password=password, tls=tls, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
                        mqtt_version=mqtt_version, report=report, warn=warn, silence_s=silence)
        with _stop_on_signals() as stop:
            counts = feed.run(max_messages=max_messages, seconds=seconds, stop=stop)
    emit(counts.to_dict(), as_json, human=f"sensors listen: {counts.line()} in {counts.seconds:.1f} s")


@contextlib.contextmanager
def _stop_on_signals():
    """An Event set by SIGTERM (a service manager's stop: systemd, docker stop) and SIGINT (Ctrl-C), so the
    listener stores and acknowledges what it holds before it exits. Python's own Ctrl-C handling is not
    enough: it is off in a process started in the background of a script (SIGINT inherited as ignored), and
    SIGTERM killed the listener with its batch unstored."""
    import signal
    import threading

    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals go to the main thread only
        yield stop
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        stop.set()

    try:
        for sig in old:
            signal.signal(sig, handler)
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@sub.command("latest")
def latest(target: str = STORE_ARG, as_json: bool = JSON_OPT) -> None:
    """Each sensor's latest reading and its status (ok / warn / alarm / unknown), and whether it is stale: its
    latest reading older than its kind allows (15 min by default, as the map decides), with when it became so
    (``stale_since``: the reading's time plus that age); a sensor that never reported is stale with no since."""
    import time as _time

    from cim.sensors import sensor_states, stale_after_s, stale_since
    from cim.store import open_store

    with open_store(target) as store:
        df = sensor_states(store)
    cols = [c for c in ("sensor_id", "kind", "unit", "value", "time", "status", "warn_threshold", "alarm_threshold")
            if c in df.columns]
    rows = df[cols].to_dict(orient="records")
    now = _time.time()
    for r in rows:
        kind = r.get("kind")
        since = stale_since(r.get("time"), kind)
        if r.get("time") is None:
            r.update(stale=True, stale_since=None, never_reported=True)
        elif since is None:  # a time that cannot be read: nothing is known of its age (as the map)
            r.update(stale=False, stale_since=None)
        else:
            from datetime import datetime

            stale = datetime.fromisoformat(since).timestamp() < now
            r.update(stale=stale, stale_since=since if stale else None)
        r["stale_after_s"] = stale_after_s(kind)
    if not rows:
        human = "(no sensors: the twin has no 'sensors' layer)"
    else:
        human = "\n".join(
            f"{r['sensor_id']:<10} {r['status']:<8} "
            f"{'-' if r['value'] is None else format(r['value'], 'g'):>10} {r.get('unit') or '':<6} {r['time'] or '-'}"
            + ("  never reported" if r.get("never_reported") else
               f"  STALE since {r['stale_since']}" if r["stale"] else "")
            for r in rows)
    emit(rows, as_json, human=human)


@sub.command("rejects")
def rejects(target: str = STORE_ARG, limit: int = typer.Option(50, "--limit", min=1, help="Show the newest N."),
            as_json: bool = JSON_OPT) -> None:
    """The messages the listener could not read or whose reading was refused, newest first, with why (the map
    shows the latest too, under its alerts: GET /api/sensors/rejects)."""
    from cim.sensors import read_rejects
    from cim.store import open_store

    with open_store(target) as store:
        df = read_rejects(store, limit=limit)
    rows = df.to_dict(orient="records")
    human = "\n".join(f"{r['received_at']}  {r['topic']}  {r['payload'][:60]!r}  {r['reason']}" for r in rows)
    emit(rows, as_json, human=human or "(no rejected messages)")


@sub.command("feeds")
def feeds(target: str = STORE_ARG, as_json: bool = JSON_OPT,
          forget: str = typer.Option(None, "--forget", metavar="FEED_OR_CLIENT_ID",
                                     help="Delete the row of a listener gone for good (not running or stopped; "
                                          "its feed name or MQTT client id), so it is no alert any more.")) -> None:
    """The MQTT listeners' states (live, silent, refused, disconnected, stopped, not running), problems first."""
    from cim.sensors import forget_feed, read_feeds
    from cim.store import open_store
    from twin_core.errors import ParameterError

    with open_store(target) as store:
        if forget is not None:
            try:
                gone = forget_feed(store, forget)
            except ValueError as exc:
                raise ParameterError(f"--forget: {exc}") from None
            if not as_json:
                typer.echo(f"forgot feed {gone!r}")
        df = read_feeds(store)
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in df.to_dict(orient="records")]
    human = "\n".join(f"{r['feed']}  {r['state']}  last message {r['last_message_at'] or 'never'}"
                      f"{'  ' + r['detail'] if r['detail'] else ''}" for r in rows)
    emit(rows, as_json, human=human or "(no feed has run: start one with `twin sensors listen`)")


def register(app: typer.Typer) -> None:
    app.add_typer(sub, name="sensors")
