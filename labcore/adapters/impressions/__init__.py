"""Impressions OLAP: "which of these posts has this user seen since then?" (DuckDB, Pinot, Redis)."""
