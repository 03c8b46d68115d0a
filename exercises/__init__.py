"""Graded exercises: see exercises/README.md. A package so `exercises.07_diversity.starter:rerank` resolves."""
