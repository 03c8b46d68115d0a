"""Pinot's per-process configs bind every listener Pinot lets us bind to 127.0.0.1 (issue #14).

The listeners themselves are checked on the running engines (tests/engines/test_loopback.py); this
pins the reason: the legacy port keys, which Pinot 0.11 binds to 0.0.0.0 whatever the host, stay unset.
"""

from __future__ import annotations

from pathlib import Path

from labcore.engines.pinot import role_configs, write_config

# Keys whose listener Pinot 0.11's ListenerConfigUtil binds to 0.0.0.0, and Pinot's default gRPC server.
LEGACY_PORT_KEYS = ("controller.port", "pinot.broker.client.queryPort", "pinot.server.adminapi.port")


def configs(tmp_path: Path) -> dict[str, dict[str, str]]:
    return role_configs(tmp_path, "127.0.0.1:2181", 9002, 8099, 8098, 8097)


def test_every_listener_names_loopback_and_no_legacy_port_key_is_set(tmp_path: Path) -> None:
    roles = configs(tmp_path)
    for role, values in roles.items():
        assert not set(LEGACY_PORT_KEYS) & set(values), role
        hosts = {key: value for key, value in values.items() if key.endswith((".host", "PortAddress", ".hostname"))}
        assert hosts and set(hosts.values()) == {"127.0.0.1"}, (role, hosts)
    assert roles["controller"]["controller.access.protocols.http.port"] == "9002"
    assert roles["broker"]["pinot.broker.client.access.protocols.http.port"] == "8099"
    assert roles["server"]["pinot.server.adminapi.access.protocols.http.port"] == "8097"
    assert roles["server"]["pinot.server.grpc.enable"] == "false"
    assert roles["zookeeper"]["clientPort"] == "2181"


def test_write_config_is_one_property_a_line(tmp_path: Path) -> None:
    path = write_config(tmp_path / "broker.conf", configs(tmp_path)["broker"])
    lines = path.read_text().splitlines()
    assert "pinot.broker.client.access.protocols.http.host=127.0.0.1" in lines
    assert all(line.count("=") >= 1 for line in lines)
