"""Session fixtures: one real stack (broker, database, api) per database backend.

PostgreSQL runs when HUB_TEST_POSTGRES_URL names a server whose user may create
databases; in CI it is required, elsewhere its tests are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clinic import Clinic
from tests.support.stack import Stack

BACKENDS = ["sqlite", "postgresql"]


def _require_backend(backend: str) -> None:
    if backend == "postgresql" and not os.environ.get("HUB_TEST_POSTGRES_URL"):
        if os.environ.get("CI"):
            pytest.fail("CI must run against PostgreSQL: HUB_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured (set HUB_TEST_POSTGRES_URL)")


@pytest.fixture(scope="session", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    _require_backend(request.param)
    s = Stack.create(request.param, tmp_path_factory.mktemp(f"stack-{request.param}"))
    yield s
    s.close()


@pytest.fixture(params=BACKENDS)
def private_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack of its own, for tests that stop or kill the broker or the api."""
    _require_backend(request.param)
    s = Stack.create(request.param, tmp_path / "stack")
    yield s
    s.close()


@pytest.fixture
def clinic(stack: Stack) -> Clinic:
    return Clinic.create(stack)


@pytest.fixture
def other_clinic(stack: Stack) -> Clinic:
    return Clinic.create(stack)
