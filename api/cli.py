"""The ``hub`` command: ``up``, ``token``, ``seed``, ``keys``, ``kiosk``, ``listen``, and
the operator's ``events``, ``sessions`` and ``check`` (api/ops)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from datetime import timedelta
from typing import Any

from api import ops
from api.settings import Settings


def _cmd_token(args: argparse.Namespace) -> int:
    from hub.tokens import mint_dev_token

    settings = Settings()
    secret = settings.resolved_jwt_secret
    if secret is None:
        print("hub token: development tokens only (HUB_ENV=development)", file=sys.stderr)
        return 2
    try:
        token = mint_dev_token(
            secret=secret,
            tenant=args.tenant,
            user=args.user,
            roles=args.role,
            ttl=timedelta(seconds=args.ttl),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except ValueError as exc:
        print(f"hub token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from api.seed import seed

    settings = Settings()
    from api.migrate import upgrade

    upgrade(settings.resolved_database_url)
    print(seed(settings, args.tenant))
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cmd_up(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.logs import configure_logging
    from api.migrate import upgrade
    from api.runtime import key_ring
    from hub.mosquitto import BrokerLayout, MosquittoProcess, prepare_broker_state, render_config
    from hub.tls import TlsFiles, ensure_dev_certificates

    settings = Settings()
    configure_logging(settings.resolved_log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.tls and not settings.tls_enabled:
        # A development CA and server certificate for the loopback names, made once.
        dev = ensure_dev_certificates(settings.data_dir / "tls")
        settings = Settings(
            tls_cert_file=dev.cert_file, tls_key_file=dev.key_file, tls_ca_file=dev.ca_file
        )
    tls = (
        TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
        if settings.tls_cert_file is not None and settings.tls_key_file is not None
        else None
    )
    layout = BrokerLayout(settings.data_dir)
    prepare_broker_state(
        layout,
        admin_username=settings.broker_admin_username,
        admin_password=settings.broker_admin_password,
    )
    # The broker's plugin reads the public keys of the api's broker tokens.
    key_ring(settings).write_jwks(settings.resolved_jwks_file)
    config = render_config(
        layout,
        mqtt_port=settings.mqtt_port,
        ws_port=settings.ws_port,
        plugin=settings.mosquitto_plugin,
        auth_plugin=settings.broker_auth_plugin,
        token_issuer=settings.broker_token_issuer,
        jwks_file=settings.resolved_jwks_file,
        bind_host=settings.broker_bind_host,
        tls=tls,
    )
    broker = MosquittoProcess(
        config,
        mqtt_port=settings.mqtt_port,
        ws_port=settings.ws_port,
        log_file=settings.data_dir / "broker.log",
    )
    upgrade(settings.resolved_database_url)
    broker.start()
    scheme = "https" if tls else "http"
    print(
        f"hub: broker on {settings.mqtt_url} and "
        f"{settings.websocket_url} (log: {settings.data_dir / 'broker.log'})",
        flush=True,
    )
    print(
        f"hub: api on {scheme}://{settings.http_host}:{settings.http_port} "
        "(Ctrl-C stops everything)",
        flush=True,
    )
    if tls is not None and tls.ca_file is not None:
        print(
            f"hub: TLS certificates are signed by the CA in {tls.ca_file}; trust it to "
            f"connect: curl --cacert {tls.ca_file}, mosquitto_sub --cafile {tls.ca_file}, "
            "or import it as an authority in the browser's certificate settings",
            flush=True,
        )
    try:
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host=settings.http_host,
                port=settings.http_port,
                log_level="info",
                lifespan="on",
                ssl_certfile=str(tls.cert_file) if tls else None,
                ssl_keyfile=str(tls.key_file) if tls else None,
            )
        )
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal;
        # turning both into KeyboardInterrupt lets the broker be stopped below.
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(server.serve())
    finally:
        broker.stop()
        print("hub: stopped", flush=True)
    return 0


def _cmd_certs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hub.tls import ensure_dev_certificates

    try:
        files = ensure_dev_certificates(Path(args.dir), tuple(args.name))
    except (OSError, ValueError) as exc:
        print(f"hub certs: {exc}", file=sys.stderr)
        return 2
    print(f"hub certs: {files.cert_file} and {files.key_file} for {', '.join(args.name)}")
    print(f"hub certs: clients trust {files.ca_file} (not for production: use your CA)")
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from api.runtime import key_ring

    settings = Settings()
    ring = key_ring(settings)
    if args.action == "rotate":
        try:
            ring.rotate()
        except ValueError as exc:
            print(f"hub keys: {exc}", file=sys.stderr)
            return 2
        ring.write_jwks(settings.resolved_jwks_file)
    active = ring.active
    for key in ring.keys:
        if key.kid == active.kid:
            state = "signs"
        elif key.created > active.created:
            state = "published; signs within seconds"
        else:
            state = "verifies until its tokens expire"
        print(f"{key.kid}  {key.created or 'configured'}  {state}")
    return 0


def _cmd_kiosk(args: argparse.Namespace) -> int:
    """The reference kiosk device (api/kiosk_device.py). Prints nothing a patient typed
    except the hub's answer."""
    import json
    from pathlib import Path

    from api import kiosk_device

    path = Path(args.secret_file).expanduser()
    try:
        if args.action == "enroll":
            device = kiosk_device.enroll(args.api, args.code, ca_file=args.ca_file)
            device.save(path)
            print(
                json.dumps({"tenant": device.tenant, "kioskId": device.kiosk_id, "file": str(path)})
            )
            return 0
        device = kiosk_device.Device.load(path)
        answer = kiosk_device.check_in(
            device,
            last_name=args.last_name,
            date_of_birth=args.dob,
            mqtt_url=args.mqtt_url,
            timeout=args.timeout,
            ca_file=args.ca_file,
        )
    except kiosk_device.DeviceError as exc:
        print(f"hub kiosk: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer))
    return 0 if answer.get("ok") is True else 1


def _ca_file_option(parser: Any) -> None:
    from pathlib import Path

    parser.add_argument(
        "--ca-file",
        type=Path,
        help="the CA that signed the hub's TLS certificate (e.g. var/tls/ca.pem of "
        "`hub up --tls`), when the system does not trust it",
    )


def _kiosk_parser(sub: Any) -> None:
    from api.kiosk_device import DEFAULT_SECRET_FILE

    kiosk = sub.add_parser("kiosk", help="a reference kiosk device (enroll, check-in)")
    actions = kiosk.add_subparsers(dest="action", required=True)
    enroll = actions.add_parser("enroll", help="exchange an enrollment code for a device secret")
    enroll.add_argument("code")
    enroll.add_argument("--api", required=True, help="the api's URL, e.g. http://127.0.0.1:8000")
    check = actions.add_parser("check-in", help="check a patient in; prints the answer as JSON")
    check.add_argument("--last-name", required=True)
    check.add_argument("--dob", required=True, help="date of birth, YYYY-MM-DD")
    check.add_argument("--mqtt-url", help="broker URL instead of the one the api hands out")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    for p in (enroll, check):
        _ca_file_option(p)
        p.add_argument(
            "--secret-file",
            default=str(DEFAULT_SECRET_FILE),
            help=f"the device file, mode 0600 (default {DEFAULT_SECRET_FILE})",
        )


def _cmd_listen(args: argparse.Namespace) -> int:
    """A partner's events as JSON lines on stdout (clients/python, hub_client). Exit
    status: 0 after Ctrl-C or SIGTERM, 2 when the hub refuses the secret or the history."""
    import json
    import os
    import ssl

    from hub_client import HistoryGoneError, HubClientError, HubSubscriber

    secret = args.secret or os.environ.get("HUB_PARTNER_SECRET", "")
    if not secret:
        print(
            "hub listen: give the partner secret in HUB_PARTNER_SECRET (or --secret)",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)

    async def listen() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        tls = ssl.create_default_context(cafile=str(args.ca_file)) if args.ca_file else None
        async with HubSubscriber(
            args.api, secret, store=args.store, after=args.after, tls_context=tls
        ) as events:
            async for event in events:
                sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
                sys.stdout.flush()

    try:
        asyncio.run(listen())
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0
    except BrokenPipeError:
        # The reader went away (``hub listen | head``): not an error.
        # Point stdout at /dev/null so flushing it at exit raises nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except HistoryGoneError as exc:
        hint = f" (resync, then --after {exc.latest_seq})" if exc.latest_seq is not None else ""
        print(f"hub listen: {exc}{hint}", file=sys.stderr)
        return 2
    except (HubClientError, ValueError) as exc:
        print(f"hub listen: {exc}", file=sys.stderr)
        return 2
    return 0


def _seq(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("a seq is 0 or more")
    return value


def _listen_parser(sub: Any) -> None:
    listen = sub.add_parser(
        "listen", help="a partner's events as JSON lines (secret from HUB_PARTNER_SECRET)"
    )
    listen.add_argument("--api", required=True, help="the api's URL, e.g. http://127.0.0.1:8000")
    listen.add_argument(
        "--secret",
        help="the partner secret; prefer HUB_PARTNER_SECRET, which other users cannot see in ps",
    )
    listen.add_argument(
        "--after", type=_seq, help="start after this seq instead of the stored watermark"
    )
    listen.add_argument(
        "--store", default="partner.db", help="SQLite file with the watermark (default partner.db)"
    )
    listen.add_argument("-v", "--verbose", action="store_true", help="log connections to stderr")
    _ca_file_option(listen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub", description="EHR notification hub")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run broker, api and relay in the foreground")
    up.add_argument(
        "--tls",
        action="store_true",
        help="serve the broker and the api over TLS with a development CA (made in the data "
        "directory on first use) unless HUB_TLS_CERT_FILE is set",
    )
    token = sub.add_parser("token", help="print a development JWT")
    token.add_argument("--tenant", required=True)
    token.add_argument("--user", required=True)
    token.add_argument("--role", action="append", required=True, help="repeatable")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds (default 8 hours)")
    seed = sub.add_parser("seed", help="demo data for a tenant")
    seed.add_argument("--tenant", required=True)
    keys = sub.add_parser("keys", help="broker token signing keys")
    keys.add_argument("action", choices=["list", "rotate"])
    certs = sub.add_parser(
        "certs", help="a development CA and TLS server certificate (compose, a test lab)"
    )
    certs.add_argument("--dir", required=True, help="where to write ca.pem, server.pem, keys")
    certs.add_argument(
        "--name",
        action="append",
        required=True,
        help="a DNS name or IP address the server is reached by (repeatable; the first "
        "is the certificate's common name)",
    )
    _kiosk_parser(sub)
    _listen_parser(sub)
    ops.add_parsers(sub)
    args = parser.parse_args(argv)
    if hasattr(args, "handler"):
        return ops.run(args)
    handler = {
        "up": _cmd_up,
        "token": _cmd_token,
        "seed": _cmd_seed,
        "keys": _cmd_keys,
        "certs": _cmd_certs,
        "kiosk": _cmd_kiosk,
        "listen": _cmd_listen,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
