"""fix_ops: the measured rain's window counts the newest reading and refuses rain hours old (Python and CLI,
one code); `twin sensors latest` says which sensors are stale and since when; an empty MQTT payload (clearing
a retained message) is no reject."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.errors import ParameterError
from twin_core.twin import Twin

T0 = datetime(2026, 7, 1, 9, 45, tzinfo=timezone.utc)  # 17:45 Beijing time


def _four(twin):
    """RG01: 60 (17:45), 25 (17:50), 30 (17:55), 100 mm/h (18:00, Beijing time)."""
    from cim.sensors import append_readings

    append_readings(twin.store, [{"sensor_id": "RG01", "time": (T0 + timedelta(minutes=5 * k)).isoformat(), "value": v}
                                 for k, v in enumerate((60.0, 25.0, 30.0, 100.0))], now=T0 + timedelta(minutes=20))


def test_the_newest_reading_counts(small_city_gpkg):
    # the window ended at the newest reading's time (18:00), which held over [18:00, next) and so counted for
    # nothing: 17:45-18:00, (60 + 25 + 30) x 5 / 60 = 9.58 mm. It ends where that reading stops holding (18:05)
    from twin_core.adapters.flood import rain_from_sensors

    with Twin.open(small_city_gpkg) as twin:
        _four(twin)
        now = T0 + timedelta(minutes=16)
        hy, info = rain_from_sensors(twin, "15min", gaps="dry", now=now)
        assert info["end"] == (T0 + timedelta(minutes=20)).isoformat()
        assert info["start"] == (T0 + timedelta(minutes=5)).isoformat()
        assert hy.total_mm() == pytest.approx((25 + 30 + 100) * 5 / 60)
        assert info["peak_mm_h"] == 100.0


def test_rain_hours_old_is_refused_unless_the_end_is_given(small_city_gpkg):
    from twin_core.adapters.flood import StaleRainError, rain_from_sensors

    with Twin.open(small_city_gpkg) as twin:
        _four(twin)
        late = T0 + timedelta(minutes=15, hours=8, seconds=30 * 60)  # 8.5 h after the latest reading
        with pytest.raises(StaleRainError, match=r"latest reading \(RG01 at 2026-07-01T10:00:00\+00:00\) is 8.5 h "
                                                 r"old .*rain_until"):
            rain_from_sensors(twin, "2h", gaps="dry", now=late)
        assert issubclass(StaleRainError, ParameterError)
        # 15 min of grace (or three reading intervals): a window ending 14 min ago is taken
        hy, _ = rain_from_sensors(twin, "15min", gaps="dry", now=T0 + timedelta(minutes=34))
        assert hy.total_mm() == pytest.approx((25 + 30 + 100) * 5 / 60)
        with pytest.raises(StaleRainError):
            rain_from_sensors(twin, "15min", gaps="dry", now=T0 + timedelta(minutes=36))
        # an explicit end runs that window on purpose, however old
        hy, info = rain_from_sensors(twin, "15min", until=(T0 + timedelta(minutes=20)).isoformat(), now=late)
        assert hy.total_mm() == pytest.approx((25 + 30 + 100) * 5 / 60)


def test_the_cli_refuses_old_rain_as_the_api_does(small_city_gpkg):
    # readings on the real clock 8.5 h old: `twin flood --rain-from-sensors 2h` ran on them without a word
    from cim.sensors import append_readings

    last = (datetime.now(timezone.utc) - timedelta(hours=8, minutes=30)).replace(second=0, microsecond=0)
    with Twin.open(small_city_gpkg) as twin:
        append_readings(twin.store, [{"sensor_id": "RG01", "time": (last - timedelta(minutes=5 * k)).isoformat(),
                                      "value": 12.0} for k in range(6)])
    res = CliRunner().invoke(get_app(), ["flood", small_city_gpkg, "--rain-from-sensors", "30min", "--rain-gaps",
                                         "dry", "--json"])
    assert isinstance(res.exception, ParameterError), res.output
    assert "8.5 h old" in str(res.exception) and "--rain-until" in str(res.exception)
    end = (last + timedelta(minutes=5)).isoformat()
    res = CliRunner().invoke(get_app(), ["flood", small_city_gpkg, "--rain-from-sensors", "30min", "--rain-until",
                                         end, "--json", "--run", "old"])
    assert res.exit_code == 0, res.output
    st = json.loads(res.stdout)["storm"]
    assert st["total_mm"] == pytest.approx(6.0) and st["end"] == datetime.fromisoformat(end).isoformat()


def test_sensors_latest_says_which_are_stale_and_since_when(small_city_gpkg):
    from cim.sensors import append_readings

    now = datetime.now(timezone.utc).replace(microsecond=0)
    with Twin.open(small_city_gpkg) as twin:
        append_readings(twin.store, [{"sensor_id": "RG01", "time": (now - timedelta(minutes=40)).isoformat(),
                                      "value": 1.0},   # ok, then silent: stale since 25 min ago
                                     {"sensor_id": "RL01", "time": (now - timedelta(minutes=1)).isoformat(),
                                      "value": 1.0}])
    res = CliRunner().invoke(get_app(), ["sensors", "latest", small_city_gpkg, "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["sensor_id"]: r for r in json.loads(res.stdout)}
    assert rows["RG01"]["stale"] is True
    assert rows["RG01"]["stale_since"] == (now - timedelta(minutes=25)).isoformat()
    assert rows["RL01"]["stale"] is False and rows["RL01"]["stale_since"] is None
    silent = [r for r in rows.values() if r["time"] is None]
    assert silent and all(r["stale"] is True and r["never_reported"] for r in silent)
    res = CliRunner().invoke(get_app(), ["sensors", "latest", small_city_gpkg])
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("RG01"))
    assert f"STALE since {(now - timedelta(minutes=25)).isoformat()}" in line, line
    assert "STALE" not in next(ln for ln in res.stdout.splitlines() if ln.startswith("RL01"))


def test_an_empty_payload_clears_a_retained_message_and_is_no_reject(tmp_path):
    # `mosquitto_pub -t TOPIC -r -n` (as the README says to clear a retained message) sends an empty payload:
    # it was stored as a reject "the payload is not JSON"
    from cim.store import open_store
    from tests.twin_core.test_sensor_feed import _make_twin
    from twin_core.sensor_feed import MqttFeed

    target = str(tmp_path / "feed.gpkg")
    _make_twin(target)
    at = datetime.now(timezone.utc)
    with open_store(target) as st:
        feed = MqttFeed(st, topic="rongtwin/sensors/+", warn=lambda s: None)
        batch = [("rongtwin/sensors/RG01", b"", at, 0, 1, 1, 0, True, False),
                 ("rongtwin/sensors/RG01", b"", at, 0, 2, 1, 0, False, False),
                 ("rongtwin/sensors/RG02", b"12.5", at, 4, 3, 1, 0, False, False)]
        good, rejects, already = feed._check(batch, at)
        assert rejects == [] and already == 0
        assert good["sensor_id"].tolist() == ["RG02"] and good["value"].tolist() == [12.5]


def test_a_dead_listener_can_be_forgotten(tmp_path):
    # a listener killed for good stayed a "not running" alert for ever: `twin sensors feeds --forget CLIENT_ID`
    from cim.sensors import read_feeds, write_feed_status
    from cim.store import open_store
    from tests.twin_core.test_sensor_feed import _make_twin

    target = str(tmp_path / "feed.gpkg")
    _make_twin(target)
    now = datetime.now(timezone.utc)
    base = {"broker": "127.0.0.1:1883", "topic": "rongtwin/sensors/+", "detail": "", "received": 0, "stored": 0,
            "rejected": 0, "heartbeat_s": 10.0, "since": now, "last_message_at": None}
    with open_store(target) as st:
        write_feed_status(st, {**base, "feed": "127.0.0.1:1883 rongtwin/sensors/+ (old-box)", "state": "live",
                               "updated_at": now - timedelta(hours=2)})   # killed two hours ago
        write_feed_status(st, {**base, "feed": "127.0.0.1:1883 rongtwin/sensors/+ (new-box)", "state": "live",
                               "updated_at": now})
    res = CliRunner().invoke(get_app(), ["sensors", "feeds", target, "--forget", "new-box"])
    assert isinstance(res.exception, ParameterError) and "still running" in str(res.exception), res.output
    res = CliRunner().invoke(get_app(), ["sensors", "feeds", target, "--forget", "nobody"])
    assert isinstance(res.exception, ParameterError) and "no feed 'nobody'" in str(res.exception), res.output
    res = CliRunner().invoke(get_app(), ["sensors", "feeds", target, "--forget", "old-box"])
    assert res.exit_code == 0, res.output
    assert "forgot feed '127.0.0.1:1883 rongtwin/sensors/+ (old-box)'" in res.stdout
    with open_store(target) as st:
        assert read_feeds(st)["feed"].tolist() == ["127.0.0.1:1883 rongtwin/sensors/+ (new-box)"]
