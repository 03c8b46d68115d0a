"""Run the ranking service on its own (compose): ``python -m services.ranking``."""

from __future__ import annotations

import uvicorn

from labcore.observability.tracing import setup_tracing
from labcore.settings import Settings
from services.ranking.app import create_app_from_settings


def main() -> None:
    settings = Settings()
    setup_tracing(settings, "ranking")
    uvicorn.run(create_app_from_settings(settings), host="0.0.0.0", port=settings.ranking_port)  # noqa: S104


if __name__ == "__main__":
    main()
