"""Child process of ``bench.credentials``: one MQTT v5 client that publishes QoS 1
messages at a steady pace and times each round trip (PUBLISH until PUBACK).

It runs in a process of its own so that the benchmark's event loop and threads do
not share its interpreter lock. Protocol with the parent: it prints ``ready`` once
connected, publishes until ``--count`` messages are done, ``--max-seconds`` have
passed, or anything (a line or end of file) arrives on stdin, then prints one JSON
line ``{"latencies_ms": [...], "timeouts": n, "error": str | null}`` and exits.
The password comes from the ``BENCH_PUB_PASSWORD`` environment variable.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

HOST = "127.0.0.1"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.publisher")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--username", required=True, help="also the client id")
    p.add_argument("--topic", default="bench/rtt")
    p.add_argument("--count", type=int, required=True, help="at most this many publishes")
    p.add_argument("--interval-ms", type=float, default=2.0, help="pace between publishes")
    p.add_argument("--max-seconds", type=float, required=True)
    p.add_argument("--ack-timeout", type=float, default=10.0)
    return p.parse_args(argv)


def _stop_requested() -> bool:
    readable, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(readable)


def _wait(seconds: float) -> bool:
    """Sleep up to ``seconds``; True when the parent asked to stop meanwhile."""
    readable, _, _ = select.select([sys.stdin], [], [], max(0.0, seconds))
    return bool(readable)


def run(opts: argparse.Namespace) -> dict[str, Any]:
    password = os.environ.get("BENCH_PUB_PASSWORD", "")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=opts.username,
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(opts.username, password)
    connack: list[Any] = []
    acked: set[int] = set()

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        connack.append(rc)

    def on_publish(c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        acked.add(mid)

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(HOST, opts.port, keepalive=60, clean_start=True)
    connect_deadline = time.monotonic() + 10.0
    while not connack and time.monotonic() < connect_deadline:
        client.loop(0.05)
    if not connack or connack[0].is_failure:
        return {"latencies_ms": [], "timeouts": 0, "error": f"connect failed: {connack}"}
    print("ready", flush=True)

    latencies: list[float] = []
    timeouts = 0
    error: str | None = None
    interval = opts.interval_ms / 1000.0
    payload = b"x" * 200
    end = time.monotonic() + opts.max_seconds
    next_at = time.monotonic()
    for _ in range(opts.count):
        now = time.monotonic()
        if now >= end or _wait(next_at - now) or _stop_requested():
            break
        next_at += interval
        t0 = time.perf_counter()
        info = client.publish(opts.topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            error = f"publish failed: {info.rc}"
            break
        while info.mid not in acked:
            if time.perf_counter() - t0 > opts.ack_timeout:
                timeouts += 1
                break
            rc = client.loop(0.05)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                error = f"connection lost: {rc}"
                break
        else:
            latencies.append((time.perf_counter() - t0) * 1000.0)
            acked.discard(info.mid)
        if error:
            break
        # After a stall, carry on at the normal pace instead of catching up in a burst.
        next_at = max(next_at, time.monotonic())
    client.disconnect()
    client.loop(0.1)
    return {"latencies_ms": latencies, "timeouts": timeouts, "error": error}


def main(argv: list[str] | None = None) -> int:
    opts = _parse(argv)
    try:
        result = run(opts)
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result), flush=True)
    return 0 if result["error"] is None else 2


if __name__ == "__main__":
    sys.exit(main())
