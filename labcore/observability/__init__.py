"""Where time goes: ``tracing`` (OpenTelemetry spans across both paths) and ``metrics`` (Prometheus)."""
