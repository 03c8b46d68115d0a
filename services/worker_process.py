"""What every compose worker process does before it consumes: logs, tracing, metrics, the stack."""

from __future__ import annotations

import logging

from labcore.bootstrap import Stack, build_stack
from labcore.observability.metrics import serve_metrics
from labcore.observability.tracing import setup_tracing
from labcore.settings import Settings


def start_worker_process(service: str, log_label: str) -> Stack:
    """Configure logging (lines tagged ``log_label``), tracing as ``service`` and the metrics
    endpoint, then build the stack from settings (``FEEDLAB_*``)."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {log_label} %(levelname)s %(message)s")
    settings = Settings()
    setup_tracing(settings, service)
    if settings.metrics_port:  # Prometheus scrapes workers here (FEEDLAB_HOST=0.0.0.0 in a container)
        serve_metrics(settings.metrics_port, settings.host)
    return build_stack(settings)
