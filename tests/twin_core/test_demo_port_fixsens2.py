"""`twin demo` checks that its port is free before it builds the city (minutes on the medium size), not after."""

from __future__ import annotations

import os
import socket

from tests.twin_core import test_demo_allow_host_fixfollow as fixfollow

quick_demo = fixfollow.quick_demo  # the build, simulations and server replaced by recorders


def test_a_port_in_use_is_refused_before_the_city_is_built(quick_demo, tmp_path):
    from viewer.server import PortInUseError

    app, run, built, served = quick_demo
    target = str(tmp_path / "demo.gpkg")
    with socket.socket() as held:  # another program (an earlier demo) listens on the port
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = run.invoke(app, ["demo", target, "--port", str(port), "--quiet"])
        assert isinstance(r.exception, PortInUseError), (r.output, r.exception)
        assert f"port {port} on 127.0.0.1 is already in use" in str(r.exception) and "--port" in str(r.exception)
        assert not built and not served and not os.path.exists(target)
        # without serving, the port does not matter
        r = run.invoke(app, ["demo", target, "--port", str(port), "--no-serve", "--quiet"])
        assert r.exit_code == 0 and built == [target] and not served, (r.output, r.exception)
