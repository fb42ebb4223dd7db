"""A refused secret stops the subscriber and ``hub listen`` at once (a loopback HTTP
server that answers as the hub does; no broker is reached)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from api.cli import main
from hub_client import HubSubscriber, PartnerRefusedError, SqliteStore


class Refusing(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.dumps({"error": "unauthorized", "message": "unknown partner secret"})
        data = body.encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def refusing_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_a_refused_secret_fails_on_enter_and_closes_the_store(
    refusing_api: str, tmp_path: Path
) -> None:
    subscriber = HubSubscriber(refusing_api, "gone-secret", store=tmp_path / "p.db")
    with pytest.raises(PartnerRefusedError, match="unknown partner secret"):
        async with subscriber:
            pytest.fail("the body must not run")
    with pytest.raises(RuntimeError, match="single use"):
        await subscriber.__aenter__()
    # The file is free again: another store opens and writes it.
    with SqliteStore(tmp_path / "p.db") as store:
        store.advance(1)


async def test_a_store_passed_in_stays_open(refusing_api: str, tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "p.db") as store:
        with pytest.raises(PartnerRefusedError):
            async with HubSubscriber(refusing_api, "s", store=store):
                pass
        assert store.watermark == 0


def test_subscriber_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="api_url"):
        HubSubscriber("127.0.0.1:8000", "s")
    with pytest.raises(ValueError, match="secret"):
        HubSubscriber("http://127.0.0.1:8000", "")
    with pytest.raises(ValueError, match="after"):
        HubSubscriber("http://127.0.0.1:8000", "s", after=-1)
    with pytest.raises(ValueError, match="renew_fraction"):
        HubSubscriber("http://127.0.0.1:8000", "s", renew_fraction=1.0)


def test_hub_listen_exits_2_on_a_refused_secret(
    refusing_api: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HUB_PARTNER_SECRET", "gone-secret")
    status = main(["listen", "--api", refusing_api, "--store", str(tmp_path / "p.db")])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert "refused the partner secret" in err


def test_hub_listen_wants_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HUB_PARTNER_SECRET", raising=False)
    assert main(["listen", "--api", "http://127.0.0.1:9"]) == 2
    assert "HUB_PARTNER_SECRET" in capsys.readouterr().err
