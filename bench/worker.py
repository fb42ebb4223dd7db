"""Child process of ``bench.sessions``: holds MQTT connections (``sessions``) or
publishes (``publish``), so that the load runs beside the benchmark's own process
instead of sharing its interpreter lock.

Protocol: JSON lines. The parent writes commands to stdin; the worker answers on
stdout, one JSON object per line with a ``type``. Times are ``time.monotonic()``
seconds, which every process on the machine shares (CLOCK_MONOTONIC).

``sessions``: each ``{"c": client id, "u": username, "p": password, "f": [filters]}``
line is one session to connect (at most ``--concurrency`` connecting at once) and
subscribe at QoS 1. Commands: ``end`` (no more sessions: answer ``connected`` once
all are done), ``stats`` (deliveries so far), ``latencies`` (delivery latencies from
the payload's send time, then forget them), ``close`` (DISCONNECT all, exit).
With ``--events`` (``bench.events``) the deliveries are the hub's event envelopes:
only those on event topics count (``events`` in ``stats``; retained snapshots have one
level less), the send time is the ``bench:<ns>`` mark in the data's ``reason``
(``marked`` of them), and an event without one is kept as (topic, arrival time) in
``arrivals`` for the parent to match against its own send times.

``publish``: one TCP client (password in ``BENCH_PASSWORD``). ``rate`` publishes QoS 1
at a steady pace, each payload starting with its send time in ns, until ``stop``;
``burst`` publishes ``count`` messages as fast as the broker's receive maximum
allows and answers when all are acknowledged; ``close``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from typing import Any

from bench.mqtt5 import (
    PINGREQ_PACKET,
    PUBACK,
    Connection,
    MqttError,
    Publish,
    publish_packet,
)

MAX_REPORTED_FAILURES = 20
# What bench.events writes into an event's data.reason, followed by time.monotonic_ns().
MARK = "bench:"
_MARK_FIELD = b'"reason":"' + MARK.encode()
# tenants/{t}/patients/{p}/{entity}/{id}/{action} (hub.topics.event_topic)
_EVENT_TOPIC_SLASHES = 6


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Sessions:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.slots = asyncio.Semaphore(opts.concurrency)
        self.conns: dict[str, Connection] = {}
        self.readers: set[asyncio.Task[None]] = set()
        self.pending: set[asyncio.Task[None]] = set()
        self.connect_ms: list[float] = []
        self.failures: list[str] = []
        self.failed = 0
        self.t_last = 0.0
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.samples: list[tuple[float, float]] = []
        self.events = 0
        self.marked = 0
        self.arrivals: list[tuple[str, float]] = []

    def on_publish(self, pub: Publish) -> None:
        now = time.monotonic()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        if self.opts.events:
            self.on_event(pub, now)
        elif self.opts.latency:
            sent_ns = int(pub.payload.split(b" ", 1)[0])
            self.samples.append((sent_ns / 1e9, (time.monotonic_ns() - sent_ns) / 1e6))

    def on_event(self, pub: Publish, now: float) -> None:
        if pub.topic.count("/") != _EVENT_TOPIC_SLASHES:
            return
        self.events += 1
        # A byte search, not json.loads: hundreds of thousands of deliveries share
        # two cores with the api and the broker.
        at = pub.payload.find(_MARK_FIELD)
        if at < 0:
            self.arrivals.append((pub.topic, now))
            return
        self.marked += 1
        start = at + len(_MARK_FIELD)
        sent_ns = int(pub.payload[start : pub.payload.index(b'"', start)])
        self.samples.append((sent_ns / 1e9, (time.monotonic_ns() - sent_ns) / 1e6))

    async def connect(self, spec: dict[str, Any]) -> None:
        async with self.slots:
            t0 = time.perf_counter()
            conn: Connection | None = None
            try:
                async with asyncio.timeout(self.opts.connect_timeout):
                    conn = await Connection.open(
                        self.opts.host, self.opts.port, ws=self.opts.transport == "ws"
                    )
                    await conn.handshake(
                        client_id=spec["c"],
                        username=spec["u"],
                        password=spec["p"],
                        clean_start=self.opts.clean_start,
                        keepalive=self.opts.keepalive,
                        session_expiry=self.opts.session_expiry,
                        subscribe=list(spec["f"]),
                    )
            except Exception as exc:  # every failure is counted and reported
                if conn is not None:
                    conn.close()
                self.failed += 1
                if len(self.failures) < MAX_REPORTED_FAILURES:
                    self.failures.append(f"{spec['c']}: {exc!r}")
                return
            self.connect_ms.append((time.perf_counter() - t0) * 1000.0)
            self.t_last = time.monotonic()
            self.conns[spec["c"]] = conn
            task = asyncio.create_task(conn.run(self.on_publish))
            self.readers.add(task)
            task.add_done_callback(self.readers.discard)

    async def pinger(self) -> None:
        while True:
            await asyncio.sleep(self.opts.keepalive / 2)
            for conn in list(self.conns.values()):
                with contextlib.suppress(OSError, RuntimeError):
                    conn.send(PINGREQ_PACKET)

    async def close(self) -> None:
        await asyncio.gather(*(c.disconnect() for c in self.conns.values()))
        for task in list(self.readers):
            task.cancel()

    async def main(self) -> None:
        lines = await stdin_lines()
        pinger = asyncio.create_task(self.pinger())
        try:
            while line := await lines.readline():
                msg = json.loads(line)
                cmd = msg.get("cmd")
                if cmd is None:
                    task = asyncio.create_task(self.connect(msg))
                    self.pending.add(task)
                    task.add_done_callback(self.pending.discard)
                elif cmd == "end":
                    while self.pending:
                        await asyncio.gather(*list(self.pending))
                    emit(
                        {
                            "type": "connected",
                            "ok": len(self.connect_ms),
                            "nfailed": self.failed,
                            "failures": self.failures,
                            "connect_ms": [round(v, 3) for v in self.connect_ms],
                            "t_last": self.t_last,
                            "live": sum(1 for t in self.readers if not t.done()),
                        }
                    )
                elif cmd == "stats":
                    live = sum(1 for t in self.readers if not t.done())
                    emit(
                        {
                            "type": "stats",
                            "count": self.count,
                            "events": self.events,
                            "marked": self.marked,
                            "first": self.first,
                            "last": self.last,
                            "live": live,
                        }
                    )
                elif cmd == "latencies":
                    emit({"type": "latencies", "samples": self.samples, "arrivals": self.arrivals})
                    self.samples = []
                    self.arrivals = []
                elif cmd == "close":
                    break
        finally:
            pinger.cancel()
            await self.close()
            emit({"type": "closed"})


class Publisher:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.conn: Connection | None = None
        self.window: asyncio.Semaphore | None = None
        self.acked = 0
        self.refused = 0
        self.sent = 0
        self.next_id = 0
        self.all_acked = asyncio.Event()
        self.rate_task: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.conn = await Connection.open(self.opts.host, self.opts.port, ws=False)
        await self.conn.handshake(
            client_id=self.opts.client_id,
            username=self.opts.username,
            password=os.environ.get("BENCH_PASSWORD", ""),
            clean_start=True,
            keepalive=60,
        )
        self.window = asyncio.Semaphore(min(self.conn.receive_maximum, 100))
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        assert self.conn is not None
        assert self.window is not None
        try:
            while True:
                for first, body in await self.conn.read_packets():
                    if first >> 4 == PUBACK:
                        self.acked += 1
                        if len(body) > 2 and body[2] >= 0x80:
                            self.refused += 1
                        self.window.release()
                        if self.acked == self.sent:
                            self.all_acked.set()
        except (MqttError, OSError) as exc:
            emit({"type": "error", "error": repr(exc)})

    async def publish(self, topic: str, payload: bytes | None = None) -> None:
        assert self.conn is not None
        assert self.window is not None
        await self.window.acquire()
        self.next_id = self.next_id % 65535 + 1
        self.sent += 1
        self.all_acked.clear()
        if payload is None:
            payload = b"%d " % time.monotonic_ns() + self.opts.padding
        self.conn.send(publish_packet(topic, payload, qos=1, packet_id=self.next_id))

    async def steady(self, topic: str, rate: float, max_seconds: float) -> None:
        interval = 1.0 / rate
        end = time.monotonic() + max_seconds
        next_at = time.monotonic()
        while (now := time.monotonic()) < end:
            if next_at > now:
                await asyncio.sleep(next_at - now)
            await self.publish(topic)
            next_at += interval
            # After a stall, keep the pace instead of catching up in a burst.
            next_at = max(next_at, time.monotonic() - interval)

    async def burst(self, topic: str, count: int) -> dict[str, Any]:
        assert self.conn is not None
        payload = b"0 " + self.opts.padding
        t0 = time.monotonic()
        for _ in range(count):
            await self.publish(topic, payload)
            if self.conn.writer.transport.get_write_buffer_size() > 1 << 20:
                await self.conn.writer.drain()
        await asyncio.wait_for(self.all_acked.wait(), 120.0)
        return {"type": "burst", "t0": t0, "t1": time.monotonic(), "count": count}

    async def main(self) -> None:
        lines = await stdin_lines()
        try:
            await self.start()
        except (MqttError, OSError) as exc:
            emit({"type": "error", "error": repr(exc)})
            return
        emit({"type": "ready"})
        try:
            while line := await lines.readline():
                msg = json.loads(line)
                cmd = msg["cmd"]
                if cmd == "rate":
                    self.rate_task = asyncio.create_task(
                        self.steady(msg["topic"], float(msg["rate"]), float(msg["max_seconds"]))
                    )
                elif cmd == "stop":
                    if self.rate_task is not None:
                        self.rate_task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await self.rate_task
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.all_acked.wait(), 10.0)
                    emit(
                        {
                            "type": "stopped",
                            "sent": self.sent,
                            "acked": self.acked,
                            "refused": self.refused,
                        }
                    )
                elif cmd == "burst":
                    emit(await self.burst(msg["topic"], int(msg["count"])))
                elif cmd == "close":
                    break
        finally:
            if self.conn is not None:
                await self.conn.disconnect()
            emit({"type": "closed"})


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.worker")
    p.add_argument("role", choices=("sessions", "publish"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--transport", choices=("ws", "tcp"), default="ws")
    p.add_argument("--concurrency", type=int, default=50, help="connects in flight")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--keepalive", type=int, default=60)
    p.add_argument("--session-expiry", type=int, default=3600)
    p.add_argument("--clean-start", action="store_true")
    p.add_argument("--latency", action="store_true", help="record delivery latencies")
    p.add_argument("--events", action="store_true", help="deliveries are hub event envelopes")
    p.add_argument("--nice", type=int, default=0)
    p.add_argument("--client-id", default="bench-pub")
    p.add_argument("--username", default="hub-service")
    p.add_argument("--payload-bytes", type=int, default=400)
    opts = p.parse_args(argv)
    opts.padding = b"x" * max(0, opts.payload_bytes - 20)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    raise_fd_limit()
    if opts.nice:
        os.nice(opts.nice)
    role = Sessions(opts) if opts.role == "sessions" else Publisher(opts)
    try:
        asyncio.run(role.main())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
