"""End-to-end: the built web app in Debian's Chromium (Playwright), against the real
broker, database and api. The browser scenarios live in clients/web/e2e; this module
starts the system for them, seeds two tenants, lets them stop and start the broker,
and runs them with `npx playwright test`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.stack import ROOT, Stack

WEB = ROOT / "clients" / "web"
ARTIFACTS = ROOT / "test-artifacts" / "web"
TENANT, OTHER_TENANT = "clinic-a", "clinic-b"


class _BrokerControl(BaseHTTPRequestHandler):
    """POST /broker/stop and /broker/start: the one thing the browser tests cannot do
    themselves. Loopback only, for the duration of the test."""

    stack: Stack

    def do_POST(self) -> None:
        broker = self.stack.broker
        if self.path == "/broker/stop":
            broker.stop()
        elif self.path == "/broker/start":
            broker.start()
        else:
            self.send_error(404)
            return
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dist = WEB / "dist"
    if not (dist / "index.html").exists():
        pytest.fail("clients/web/dist is not built: scripts/test builds it (npm run build)")
    # Credentials of 30 s (the least the api allows): the windows renew them during the
    # scenarios, as a long-open tab does every hour.
    stack = Stack.create(
        "sqlite",
        tmp_path_factory.mktemp("web-stack"),
        HUB_WEB_DIST_DIR=str(dist),
        HUB_SESSION_TTL_SECONDS="30",
        HUB_KIOSK_CREDENTIALS_TTL_SECONDS="30",
    )
    try:
        for tenant in (TENANT, OTHER_TENANT):
            subprocess.run(
                [sys.executable, "-m", "api.cli", "seed", "--tenant", tenant],
                env=stack.api.env,
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
        yield stack
    finally:
        stack.close()


@pytest.fixture
def broker_control(web_stack: Stack) -> Iterator[str]:
    handler = type("Control", (_BrokerControl,), {"stack": web_stack})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="broker-control", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        if not web_stack.broker.running:
            web_stack.broker.start()


def _playwright(spec: str, stack: Stack, control_url: str) -> None:
    npx = shutil.which("npx")
    assert npx, "npx is missing (Node 20 with npm)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HUB_E2E_BASE_URL": stack.api.base_url,
        "HUB_E2E_CONTROL_URL": control_url,
        "HUB_E2E_TENANT": TENANT,
        "HUB_E2E_OTHER_TENANT": OTHER_TENANT,
        "HUB_E2E_ARTIFACTS": str(ARTIFACTS),
    }
    result = subprocess.run(
        [npx, "playwright", "test", spec], cwd=WEB, env=env, capture_output=True, text=True
    )
    report = result.stdout + result.stderr
    (ARTIFACTS / f"{Path(spec).stem}.log").write_text(report)
    assert result.returncode == 0, f"playwright failed:\n{report[-6000:]}"
    summary = [line for line in report.splitlines() if " passed" in line]
    assert summary, f"playwright ran no test:\n{report[-3000:]}"
    print(json.dumps({"spec": spec, "summary": summary[-1].strip()}))


def test_live_schedule_tenant_isolation_and_broker_restart_in_the_browser(
    web_stack: Stack, broker_control: str
) -> None:
    _playwright("e2e/schedule.spec.ts", web_stack, broker_control)
    assert (ARTIFACTS / "schedule.png").stat().st_size > 0


def test_demographics_billing_and_biopsy_alerts_in_the_browser(
    web_stack: Stack, broker_control: str
) -> None:
    _playwright("e2e/domains.spec.ts", web_stack, broker_control)


def test_kiosk_enrollment_and_check_in_seen_live_at_the_front_desk(
    web_stack: Stack, broker_control: str
) -> None:
    _playwright("e2e/kiosk.spec.ts", web_stack, broker_control)


def test_toasts_across_windows_of_one_user_and_the_realtime_wrapper(
    web_stack: Stack, broker_control: str
) -> None:
    _playwright("e2e/windows.spec.ts", web_stack, broker_control)
