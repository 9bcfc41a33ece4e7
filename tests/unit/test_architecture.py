"""Services talk only through NATS: none imports another, shared/ imports no service and no application, and
applications (apps/: the CLI, the local stack) reach services only through contracts over NATS or HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["intake", "risk", "scheduling"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_itself_and_shared(service: str) -> None:
    others = [s for s in SERVICES if s != service]
    for path in (ROOT / "services" / service).rglob("*.py"):
        for name in _imports(path):
            assert not any(name.startswith(f"services.{o}") for o in others), f"{path} imports {name}"


def test_shared_imports_no_service_and_no_application() -> None:
    for path in (ROOT / "shared").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(("services", "apps")), f"{path} imports {name}"


def test_applications_import_no_service() -> None:
    """The CLI and the local stack are clients: they use shared/ contracts, never a service's code or tables."""
    for path in (ROOT / "apps").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith("services"), f"{path} imports {name}: ask the service over NATS instead"


def test_tests_share_helpers_only_through_tests_support() -> None:
    """Builders live in tests/support/: no test imports another test module or conftest, and bench/ is reached
    only through tests/support/schedules.py."""
    test_modules = ("tests.unit", "tests.integration", "tests.e2e", "tests.faults", "tests.browser", "tests.conftest")
    for path in (ROOT / "tests").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(test_modules), f"{path} imports {name}: move what it needs to tests/support/"
            if path != ROOT / "tests" / "support" / "schedules.py":
                assert name.split(".")[0] != "bench", f"{path} imports {name}: use tests/support/schedules.py"


def test_no_unit_test_uses_the_database_under_test() -> None:
    """CI runs tests/unit once, not once per database (.ci/run): a test on the database DATABASE_URL names
    (tests/support/databases.py) belongs in tests/integration, which runs on SQLite and on PostgreSQL."""
    for path in (ROOT / "tests" / "unit").rglob("*.py"):
        assert "tests.support.databases" not in _imports(path), (
            f"{path.relative_to(ROOT)} uses the database under test: move it to tests/integration")
