"""labcore: the library behind every notebook and service of the Social Feed Lab.

Notebooks start with ``lab = labcore.connect()``; services and the runtime build their clients with
``labcore.build_stack(settings)``. Importing this package has no side effects.
"""

from labcore.bootstrap import Stack, build_stack
from labcore.lab.client import LabClient, connect
from labcore.settings import Settings

__all__ = ["LabClient", "Settings", "Stack", "build_stack", "connect"]
