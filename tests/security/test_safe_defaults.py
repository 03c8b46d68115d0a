"""Safe defaults: loopback only, JupyterLab keeps its token, compose ships no real secrets, logs hold
no credentials."""

from __future__ import annotations

import re
from pathlib import Path

import psutil

from tests.conftest import RunningStack

ROOT = Path(__file__).resolve().parents[2]


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of ``pid`` and its children."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return {
        (c.laddr.ip, c.laddr.port)
        for proc in procs
        for c in proc.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def test_the_embedded_stack_listens_on_loopback_only(running_stack: RunningStack) -> None:
    import json

    info = json.loads((running_stack.data_dir / "runtime.json").read_text())
    sockets = listening(info["pid"])
    ports = {port for _, port in sockets}
    wanted = {int(url.rsplit(":", 1)[1].split("/")[0]) for url in (info["api_url"], info["ranking_url"], info["feature_server_url"], info["redis_url"])}
    assert wanted <= ports, (wanted, sockets)  # API, ranking, Feast's server and the redis-server child
    assert {ip for ip, _ in sockets} <= {"127.0.0.1", "::1"}, sockets


def test_jupyterlab_keeps_token_auth_and_loopback() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lab_lines = [line for line in makefile.splitlines() if "jupyter lab" in line and not line.lstrip().startswith("#")]
    assert lab_lines
    for line in lab_lines:
        assert not re.search(r"(NotebookApp|ServerApp|IdentityProvider)\.(token|password)\s*=\s*['\"]{2}", line), line
        assert "--ip 127.0.0.1" in line or "--ip=127.0.0.1" in line, line
        assert "disable_check_xsrf" not in line and "allow_origin" not in line, line


SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"ghp_[A-Za-z0-9]{36}|xox[baprs]-[A-Za-z0-9-]{10,}"),  # GitHub, Slack tokens
    re.compile(r"(?i)(secret|password|token)[\w-]*\s*[:=]\s*['\"]?[A-Za-z0-9+/]{32,}"),  # long literal secrets
]


def test_compose_ships_no_real_secrets() -> None:
    compose = ROOT / "compose"
    files = [p for p in compose.rglob("*") if p.is_file() and p.suffix in {".yml", ".yaml", ".env", ".conf", ".json", ".sh", ""}]
    assert files, "compose/ is missing"
    findings = [
        f"{path.relative_to(ROOT)}: {match.group(0)[:40]}"
        for path in files
        for pattern in SECRET_PATTERNS
        for match in pattern.finditer(path.read_text(errors="replace"))
    ]
    assert findings == []


def test_logs_hold_no_credentials(running_stack: RunningStack) -> None:
    from labcore.settings import Settings

    settings = Settings()
    log = (running_stack.data_dir / "runtime.log").read_text(errors="replace")
    assert "runtime up" in log
    for secret in {settings.s3_secret_key, "minioadmin"} - {""}:
        assert secret not in log
    assert not re.search(r"(?i)(password|passwd|secret_key|aws_secret)\s*[=:]\s*\S+", log)
    # signed media URLs are credentials for a while: their signatures stay out of the log too
    assert not re.search(r"signature=[0-9a-f]{64}", log)
