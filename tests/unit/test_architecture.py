"""The package's shape: no import cycles, and the layers point one way.

Read from the source (``ast``), not by importing, so a cycle that Python happens to resolve today —
because of the order modules are first imported in — still fails here.

Layers: ``adapters`` never import the feed, the workers or the lab tooling; the feed and the workers
never import the lab tooling (``labcore.lab`` runs and teaches the lab; the product does not need it).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "labcore"

FORBIDDEN = {  # importer prefix -> prefixes it must never import (at top level or lazily)
    "labcore.adapters": ("labcore.feed", "labcore.workers", "labcore.lab", "labcore.write", "labcore.widgets"),
    "labcore.feed": ("labcore.lab", "labcore.workers", "labcore.widgets"),
    "labcore.workers": ("labcore.lab", "labcore.feed", "labcore.widgets"),
    "labcore.write": ("labcore.lab", "labcore.feed", "labcore.widgets"),
    "labcore.features": ("labcore.lab", "labcore.feed", "labcore.workers", "labcore.widgets"),
    "labcore.ranking": ("labcore.lab", "labcore.feed", "labcore.workers", "labcore.widgets"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """labcore modules ``path`` imports; ``top_level_only`` skips function bodies and TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                if not top_level_only:
                    visit(node.body)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not top_level_only:
                    visit(node.body)
                continue
            if isinstance(node, ast.ClassDef):
                visit(node.body)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("labcore"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("labcore"):
                for alias in node.names:  # `from pkg import submodule` depends on the submodule
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in MODULES else node.module)
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], (ast.stmt, ast.ExceptHandler)):
                    visit([n for n in inner if isinstance(n, ast.stmt)] + [
                        s for h in inner if isinstance(h, ast.ExceptHandler) for s in h.body
                    ])

    visit(tree.body)
    return {m for m in found if m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    return found


def test_no_import_cycles_at_import_time() -> None:
    graph = {name: imports(path, top_level_only=True) - {name} for name, path in MODULES.items()}
    assert cycles(graph) == []


def test_no_cycles_even_counting_lazy_imports() -> None:
    graph = {name: imports(path, top_level_only=False) - {name} for name, path in MODULES.items()}
    # A package __init__ re-exporting its submodules is not a cycle of concepts; drop those edges.
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    assert cycles(graph) == []


@pytest.mark.parametrize("importer", sorted(FORBIDDEN))
def test_layers_point_one_way(importer: str) -> None:
    offences = [
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if name.startswith(importer)
        for target in imports(path, top_level_only=False)
        if target.startswith(FORBIDDEN[importer])
    ]
    assert offences == []


def test_no_product_module_imports_the_fakes() -> None:
    """``labcore.testing`` is for tests and exercises: a fake must never become a silent fallback."""
    offences = [
        name
        for name, path in MODULES.items()
        if name != "labcore.testing" and "labcore.testing" in imports(path, top_level_only=False)
    ]
    assert offences == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_importing_labcore_loads_no_model_and_no_vendor_engine() -> None:
    code = (
        "import sys, labcore\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'feast', 'kafka', 'pinotdb', 'qdrant_client', 'duckdb')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


# What labcore/features.py and labcore/ranking.py offered before each became a package (issue #15):
# a package that replaces a module keeps that module's names importable, so a notebook cell or a
# .env line written against the old module (FEEDLAB_AFFINITY=labcore.features:affinity_score) works.
# Names that left the package are not here: the SQL row builders (labcore.adapters.sql.feature_rows)
# and FeatureRefresh (labcore.workers.features).
REPLACED_MODULES = {
    "labcore.features": [
        "AFFINITY_FEATURES", "AFFINITY_SCALE", "AFFINITY_SCHEMA", "AFFINITY_SERVICE", "AuthorAffinity",
        "EmbeddingsFor", "FOLLOW_EVIDENCE", "FeastServerFeatures", "FeatureRow", "FeatureServerThread",
        "FeatureSource", "FeatureWriter", "MaterializeReport", "POST_FEATURES", "POST_SCALARS",
        "POST_STATS_SCHEMA", "PostStats", "RANKING_SERVICE", "RANKING_WITHOUT_EMBEDDING", "RankingFeatures",
        "RedisFeatureCache", "TS_FIELD", "USER_FEATURES", "USER_STATS_SCHEMA", "UserStats", "VIEWS",
        "affinity_key", "affinity_score", "feature_server_app", "materialize", "post_key", "user_key",
    ],
    "labcore.ranking": [
        "MODELS", "Model", "RECENCY_HALF_LIFE_HOURS", "WEIGHTS", "Candidate", "formula_terms", "formula_v1",
        "get_model", "jitter", "recency",
    ],
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(REPLACED_MODULES))
def test_a_package_that_replaced_a_module_still_offers_its_names(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in REPLACED_MODULES[package] if not hasattr(module, name)]
    assert missing == []
    assert set(REPLACED_MODULES[package]) <= set(module.__all__) <= set(dir(module))


def test_the_old_extension_point_default_still_resolves() -> None:
    from labcore.extensions import resolve
    from labcore.features.base import affinity_score

    assert resolve("labcore.features:affinity_score") is affinity_score


def test_the_features_package_loads_feast_only_when_asked() -> None:
    """Its re-exports are lazy: the feed imports ``labcore.features.base`` without Feast or FastAPI."""
    code = (
        "import sys, labcore.features.base, labcore.ranking\n"
        "print([m for m in ('feast', 'fastapi', 'pyarrow') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


def test_qdrant_local_mode_is_gone_from_the_product_and_the_course() -> None:
    """Issue #16 retired qdrant-client's local mode: the embedded profile runs Qdrant's own engine
    (``qdrant_edge``). No product code opens it, and no lesson, doc or docstring still tells a learner
    that the embedded stack runs it (only ``tests/engines/qdrant_standin.py``, a test double, uses it)."""
    places = [PACKAGE, ROOT / "services", ROOT / "bench", ROOT / "exercises", ROOT / "notebooks", ROOT / "docs"]
    files = [ROOT / "README.md"] + [
        p for place in places for p in sorted(place.rglob("*")) if p.suffix in {".py", ".md", ".ipynb"}
    ]
    said = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in files
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if "local mode" in line.lower() or "QdrantClient(path" in line or 'QdrantClient(":memory:"' in line
    ]
    assert not said, f"Qdrant local mode is still used or described at: {said}"
