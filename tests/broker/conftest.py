"""Fixtures for the broker plugin tests: the plugin is built once per session; brokers
are real Mosquitto processes (Dynamic Security + hub-auth) in their own folders."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker.hubauth import ORDERS, PLUGIN_DIR, HubBroker


@pytest.fixture(scope="session")
def plugin_built() -> None:
    subprocess.run(["make", "-C", str(PLUGIN_DIR)], check=True, capture_output=True)


@pytest.fixture(scope="module", params=ORDERS)
def broker(
    plugin_built: None, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubBroker]:
    """One broker per module and plugin load order, for tests that change nothing but
    their own (uniquely named) clients and topics."""
    b = HubBroker(tmp_path_factory.mktemp(f"broker-{request.param}"), order=request.param)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def own_broker(plugin_built: None, tmp_path: Path) -> Iterator[HubBroker]:
    """A broker of its own, for tests that restart it or change its files."""
    b = HubBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()
