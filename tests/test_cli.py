"""The `hub` command as a person runs it: `up` brings the whole system up on the
embedded defaults and Ctrl-C stops all of it; `token` prints one JWT; `seed` seeds."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.mqtt import Probe
from tests.support.stack import ROOT, free_port

HUB = [sys.executable, "-m", "api.cli"]


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return {**env, "HUB_DATA_DIR": str(data), **extra}


def test_token_prints_one_jwt_and_nothing_else(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            *HUB,
            "token",
            "--tenant",
            "acme",
            "--user",
            "u-1",
            "--role",
            "front_desk",
            "--role",
            "billing",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    lines = out.stdout.splitlines()
    assert len(lines) == 1
    secret = (tmp_path / "secrets" / "jwt-secret").read_text().strip()
    claims = jwt.decode(lines[0], secret, algorithms=["HS256"])
    assert claims["tenant"] == "acme"
    assert claims["sub"] == "u-1"
    assert claims["roles"] == ["front_desk", "billing"]
    assert stat.S_IMODE((tmp_path / "secrets" / "jwt-secret").stat().st_mode) == 0o600


def test_token_refuses_an_unknown_role(tmp_path: Path) -> None:
    out = subprocess.run(
        [*HUB, "token", "--tenant", "acme", "--user", "u-1", "--role", "root"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert "root" in out.stderr


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_runs_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    ports = {"HUB_HTTP_PORT": free_port(), "HUB_MQTT_PORT": free_port(), "HUB_WS_PORT": free_port()}
    env = _env(tmp_path / "var", **{k: str(v) for k, v in ports.items()})
    seeded = subprocess.run(
        [*HUB, "seed", "--tenant", "demo"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert "8 appointments" in seeded.stdout
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen([*HUB, "up"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{ports['HUB_HTTP_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.2)
        for name in ("dynsec-admin", "hub-service", "jwt-secret"):
            assert stat.S_IMODE((tmp_path / "var" / "secrets" / name).stat().st_mode) == 0o600
        assert (tmp_path / "var" / "broker" / "dynamic-security.json").exists()
        # The built demo app at / (scripts/test builds clients/web before pytest).
        page = httpx.get(base + "/")
        assert page.status_code == 200
        assert "<title>Clinic hub</title>" in page.text
        # The development sign-in, the schedule, and a live WebSocket subscription.
        token = httpx.post(
            base + "/dev/token",
            json={"tenant": "demo", "user": "fd-garcia", "roles": ["front_desk"]},
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        board = httpx.get(base + "/appointments", headers=auth).json()
        assert len(board) == 8
        biopsies = httpx.get(base + "/biopsies", headers=auth).json()
        assert [b["status"] for b in biopsies] == ["sent", "sent"]
        claims = httpx.get(base + "/claims", headers=auth).json()
        assert sorted(c["status"] for c in claims) == ["paid", "submitted"]
        creds = httpx.post(base + "/realtime/credentials", headers=auth).json()
        probe = Probe(
            client_id=creds["clientId"],
            username=creds["username"],
            password=creds["password"],
            port=ports["HUB_WS_PORT"],
            transport="websockets",
        )
        assert not probe.connect().is_failure
        probe.subscribe("tenants/demo/patients/+/appointment/+/+")
        r = httpx.post(
            base + f"/appointments/{board[0]['id']}/status",
            headers=auth,
            json={"status": "checked_in"},
        )
        assert r.status_code == 200
        assert probe.wait_event("appointment:checkedin", board[0]["id"]).json()["tenant"] == "demo"
        probe.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("hub up did not stop on Ctrl-C")
        log.close()
    assert code == 0
    assert not _port_open(ports["HUB_MQTT_PORT"])
    assert not _port_open(ports["HUB_HTTP_PORT"])


def test_up_with_tls_serves_the_broker_and_the_api_encrypted_only(tmp_path: Path) -> None:
    ports = {"HUB_HTTP_PORT": free_port(), "HUB_MQTT_PORT": free_port(), "HUB_WS_PORT": free_port()}
    data = tmp_path / "var"
    env = _env(data, **{k: str(v) for k, v in ports.items()})
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [*HUB, "up", "--tls"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    ca = data / "tls" / "ca.pem"
    base = f"https://127.0.0.1:{ports['HUB_HTTP_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            try:
                trusted = ssl.create_default_context(cafile=str(ca))
                if httpx.get(base + "/readyz", timeout=2, verify=trusted).status_code == 200:
                    break
            except (httpx.HTTPError, OSError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.2)
        for key in ("ca-key.pem", "server-key.pem"):
            assert stat.S_IMODE((data / "tls" / key).stat().st_mode) == 0o600
        assert f"--cacert {ca}" in (tmp_path / "up.log").read_text()
        # Without the CA the api's certificate is not trusted; plain HTTP is not served.
        with pytest.raises(httpx.ConnectError):
            httpx.get(base + "/readyz", timeout=5)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{ports['HUB_HTTP_PORT']}/readyz", timeout=5)
        https = httpx.Client(base_url=base, verify=trusted, timeout=30)

        def bearer(user: str, role: str) -> dict[str, str]:
            body = {"tenant": "demo", "user": user, "roles": [role]}
            return {
                "Authorization": f"Bearer {https.post('/dev/token', json=body).json()['token']}"
            }

        creds = https.post("/realtime/credentials", headers=bearer("fd-1", "front_desk")).json()
        assert creds["mqttUrl"] == f"mqtts://localhost:{ports['HUB_MQTT_PORT']}"
        assert creds["websocketUrl"] == f"wss://localhost:{ports['HUB_WS_PORT']}/mqtt"

        def probe(transport: str, ca_file: Path | None) -> Probe:
            port = ports["HUB_WS_PORT" if transport == "websockets" else "HUB_MQTT_PORT"]
            return Probe(
                client_id=creds["clientId"],
                username=creds["username"],
                password=creds["password"],
                port=port,
                transport=transport,
                ca_file=ca_file,
            )

        # A browser's connection (wss) with the issued credentials; the relay, over its
        # own TLS connection, delivers a change to it.
        browser = probe("websockets", ca)
        assert not browser.connect().is_failure
        assert browser.subscribe("tenants/demo/patients/#").value == 1
        admin = bearer("ad-1", "admin")
        # A partner's `hub listen` over HTTPS and mqtts, trusting the CA it is given.
        partner = https.post(
            "/partners",
            headers=admin,
            json={"id": "lab", "name": "Lab", "eventTypes": ["patient:updated"]},
        ).json()
        listen = subprocess.Popen(
            [
                *HUB,
                "listen",
                "--api",
                base,
                "--ca-file",
                str(ca),
                "--store",
                str(tmp_path / "partner.db"),
            ],
            env={**env, "HUB_PARTNER_SECRET": partner["secret"]},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        made = https.post(
            "/patients",
            headers=admin,
            json={"firstName": "Ada", "lastName": "Lovelace", "dateOfBirth": "1985-12-10"},
        )
        assert made.status_code == 201, made.text
        changed = https.put(f"/patients/{made.json()['id']}", headers=admin, json={"phone": "5"})
        assert changed.status_code == 200, changed.text
        assert browser.wait_event("patient:updated").json()["tenant"] == "demo"
        browser.close()
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(listen.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
        try:
            heard = json.loads(lines.get(timeout=60))
        finally:
            listen.send_signal(signal.SIGINT)
            _, err = listen.communicate(timeout=30)
        assert heard["type"] == "patient:updated", err
        assert listen.returncode == 0, err
        # A kiosk's or partner's connection (mqtts): with TLS it works, without it not.
        device = probe("tcp", ca)
        assert not device.connect().is_failure
        device.close()
        with pytest.raises((TimeoutError, OSError)):
            probe("tcp", None).connect()
        https.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("hub up did not stop on Ctrl-C")
        log.close()
    assert code == 0


def test_certs_makes_a_ca_and_a_certificate_for_the_names_given(tmp_path: Path) -> None:
    out = subprocess.run(
        [*HUB, "certs", "--dir", str(tmp_path / "tls"), "--name", "broker", "--name", "::1"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert "broker, ::1" in out.stdout
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "tls" / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in san] == ["broker", "::1"]
    assert stat.S_IMODE((tmp_path / "tls" / "server-key.pem").stat().st_mode) == 0o600
