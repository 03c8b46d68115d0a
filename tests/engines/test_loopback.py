"""Every engine ``labcore.engines`` starts listens on loopback only (issue #14: "every port on 127.0.0.1").

The engines are the session's (``engines`` and ``embedded_redis`` of tests/conftest.py, the same
``make_engine`` path ``python -m labcore.engines up`` takes), so this starts no stack of its own. For
each engine process and everything it forked, every listening TCP socket must be bound to 127.0.0.1,
::1 or the IPv4-mapped ::ffff:127.0.0.1 (a JVM's IPv6 socket bound to 127.0.0.1, e.g. Kafka's).

One known exception, checked exactly: the Pinot server's Netty query port, which Pinot binds to all
interfaces with no key to change it (see ``labcore.engines.pinot.role_configs``). The test also fails
once that port is on loopback, so the exception is removed rather than left to hide another port.
"""

from __future__ import annotations

import ipaddress

import psutil
import pytest

from labcore.engines.stack import ORDER

def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])  # an IPv6 address may carry a %zone
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def listeners(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN of ``pid`` and its descendants."""
    root = psutil.Process(pid)
    found = set()
    for process in [root, *root.children(recursive=True)]:
        try:
            sockets = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        found |= {(s.laddr.ip, s.laddr.port) for s in sockets if s.status == psutil.CONN_LISTEN}
    return found


def processes(engine) -> list[tuple[str, int]]:  # noqa: ANN001 - any labcore.engines engine
    """(process name, pid) of each process an engine started (Pinot: ZooKeeper, controller, broker, server)."""
    children = getattr(engine, "_children", None) or [engine._child]
    return [(child.name, child.pid) for child in children if child is not None and child.pid]


@pytest.mark.slow
def test_every_engine_listens_on_loopback_only(engines, embedded_redis) -> None:  # noqa: ANN001
    started = {name: processes(engines.get(name)) for name in ORDER}
    started["redis"] = [("redis", embedded_redis.pid)]
    unbindable = {("pinot-server", engines.get("pinot").server_netty_port)}
    seen, exposed = [], []
    for engine, children in started.items():
        assert children, f"{engine}: no process recorded"
        for process, pid in children:
            sockets = listeners(pid)
            assert sockets, f"{engine} ({process}, pid {pid}) listens on nothing: the check would prove nothing"
            seen += [(process, port) for _, port in sockets]
            exposed += [(engine, process, ip, port) for ip, port in sorted(sockets) if not is_loopback(ip)]
    beyond = [f"{engine} ({process}) port {port} on {ip}" for engine, process, ip, port in exposed
              if (process, port) not in unbindable]  # fmt: skip
    assert not beyond, "listening beyond loopback:\n" + "\n".join(beyond)
    assert {(process, port) for _, process, _, port in exposed} == unbindable, (
        "the Pinot server's Netty query port is on loopback now: drop it from `unbindable`"
    )
    assert {process for process, _ in seen} >= {"kafka", "pinot-zookeeper", "pinot-controller", "pinot-broker",
                                                 "pinot-server", "jaeger", "seaweedfs", "prometheus", "redis"}


@pytest.mark.parametrize(
    ("ip", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False),
     ("::ffff:10.0.0.5", False), ("192.168.1.2", False), ("fe80::1%eth0", False)],
)  # fmt: skip
def test_is_loopback(ip: str, loopback: bool) -> None:
    assert is_loopback(ip) is loopback
