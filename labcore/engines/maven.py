"""Jars from Maven Central into the engines cache: a throwaway pom plus ``copy-dependencies``.

Kafka and Pinot ship as Maven artifacts; their runtime classpath is the artifact and its runtime
dependencies, copied flat into ``<dest>/libs``. Maven's own repository lives inside the engines cache
too (``<cache>/m2``), and a generated settings file mirrors every repository a pom names to Maven
Central: the registries reachable here are the only ones asked, and a dependency that Central does not
serve fails the fetch loudly instead of timing out against an unreachable host.

A fetch writes ``<dest>/.complete`` last, so an interrupted one is redone, never half-used.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from labcore.engines.process import log_tail
from labcore.errors import BackendUnavailable

CENTRAL = "https://repo.maven.apache.org/maven2"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


@dataclass(frozen=True)
class Artifact:
    """``group:artifact:version`` plus exclusions (``group:artifact``, ``*`` allowed as artifact)."""

    group: str
    artifact: str
    version: str
    exclusions: Sequence[str] = field(default_factory=tuple)

    def xml(self) -> str:
        excluded = "".join(
            f"<exclusion><groupId>{escape(g)}</groupId><artifactId>{escape(a)}</artifactId></exclusion>"
            for g, a in (item.split(":", 1) for item in self.exclusions)
        )
        return (
            f"<dependency><groupId>{escape(self.group)}</groupId><artifactId>{escape(self.artifact)}</artifactId>"
            f"<version>{escape(self.version)}</version><exclusions>{excluded}</exclusions></dependency>"
        )


def pom(artifacts: Sequence[Artifact]) -> str:
    dependencies = "\n    ".join(a.xml() for a in artifacts)
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.feedlab</groupId><artifactId>engine-classpath</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    {dependencies}
  </dependencies>
</project>
"""


SETTINGS = f"""<settings>
  <mirrors>
    <mirror><id>central-only</id><mirrorOf>*</mirrorOf><url>{CENTRAL}</url></mirror>
  </mirrors>
</settings>
"""


def is_fetched(dest: Path) -> bool:
    return (dest / ".complete").exists()


def fetch_classpath(
    artifacts: Sequence[Artifact],
    dest: Path,
    cache_dir: Path,
    *,
    name: str,
    mvn: str = "mvn",
    drop: Sequence[str] = (),
    timeout: float = 1800,
) -> Path:
    """Copy ``artifacts`` and their runtime dependencies into ``dest/libs``; return that folder.

    ``drop`` names jar file prefixes removed afterwards (a second logging binding, say). Idempotent.
    """
    libs = dest / "libs"
    if is_fetched(dest):
        return libs
    if shutil.which(mvn) is None:
        raise BackendUnavailable(name, f"Maven ({mvn}) not found: install it (Debian: apt-get install maven)")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="feedlab-mvn-") as work:
        (Path(work) / "pom.xml").write_text(pom(artifacts))
        (Path(work) / "settings.xml").write_text(SETTINGS)
        log = dest / "fetch.log"
        argv = [
            mvn, "-B", "-q", "-s", "settings.xml",
            f"-Dmaven.repo.local={cache_dir / 'm2'}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={libs}",
        ]  # fmt: skip
        started = time.monotonic()
        with open(log, "wb") as out:
            result = subprocess.run(argv, cwd=work, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        if result.returncode != 0:
            raise BackendUnavailable(name, f"Maven could not fetch {artifacts[0].artifact}; {log}:\n{log_tail(log)}")
    for jar in libs.glob("*.jar"):
        if any(jar.name.startswith(prefix) for prefix in drop):
            jar.unlink()
    (dest / ".complete").write_text(f"fetched in {time.monotonic() - started:.0f} s\n")
    return libs
