"""A minimal MQTT 5 client for load generation: CONNECT, SUBSCRIBE, QoS 0/1 PUBLISH
(both ways), PUBACK, PINGREQ and DISCONNECT, over plain TCP or over a WebSocket
(RFC 6455, subprotocol ``mqtt``) on asyncio streams.

paho with one network loop per client costs too much CPU to hold thousands of
WebSocket sessions in a few Python processes; this client costs one asyncio reader
task per connection and parses whole chunks. It implements only what the benchmark
uses and checks what the broker answers (CONNACK and SUBACK reason codes, the
WebSocket handshake's accept key).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PINGREQ_PACKET = b"\xc0\x00"


class MqttError(Exception):
    """The broker refused something, or the connection broke."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def _bin(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _varint(len(body)) + body


def connect_packet(
    *,
    client_id: str,
    username: str | None,
    password: str | None,
    clean_start: bool,
    keepalive: int,
    session_expiry: int = 0,
) -> bytes:
    flags = 0x02 if clean_start else 0
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    props = b""
    if session_expiry:
        props += b"\x11" + struct.pack("!I", session_expiry)
    body = _str("MQTT") + bytes((5, flags)) + struct.pack("!H", keepalive)
    body += _varint(len(props)) + props + _str(client_id)
    if username is not None:
        body += _str(username)
    if password is not None:
        body += _bin(password.encode())
    return _packet(CONNECT << 4, body)


def subscribe_packet(packet_id: int, filters: list[str], qos: int) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00"
    for f in filters:
        body += _str(f) + bytes((qos,))
    return _packet((SUBSCRIBE << 4) | 0x02, body)


def publish_packet(topic: str, payload: bytes, *, qos: int, packet_id: int = 0) -> bytes:
    body = _str(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    body += b"\x00" + payload
    return _packet((PUBLISH << 4) | (qos << 1), body)


def puback_packet(packet_id: int) -> bytes:
    # Reason code and properties omitted: success (MQTT 5, 3.4.2.1).
    return b"\x40\x02" + struct.pack("!H", packet_id)


def _read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(value, next position), or None when the buffer ends inside it."""
    value, shift = 0, 0
    for i in range(4):
        if pos + i >= len(buf):
            return None
        byte = buf[pos + i]
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise MqttError("malformed remaining length")


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int


def parse_publish(first: int, body: bytes) -> Publish:
    qos = (first >> 1) & 0x03
    (tlen,) = struct.unpack_from("!H", body, 0)
    pos = 2 + tlen
    topic = body[2:pos].decode()
    packet_id = 0
    if qos:
        (packet_id,) = struct.unpack_from("!H", body, pos)
        pos += 2
    got = _read_varint(body, pos)
    if got is None:
        raise MqttError("truncated PUBLISH properties")
    plen, pos = got
    return Publish(topic, body[pos + plen :], qos, packet_id)


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    mask = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        n, "little"
    )


def ws_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One client frame (FIN set, masked as RFC 6455 requires of clients)."""
    n = len(payload)
    head = bytes((0x80 | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += bytes((0x80 | 126,)) + struct.pack("!H", n)
    else:
        head += bytes((0x80 | 127,)) + struct.pack("!Q", n)
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class Connection:
    """One MQTT 5 connection. ``on_packet(first_byte, body)`` is called for every
    packet the broker sends once the connection is set up (from ``run``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ws: bool):
        self.reader = reader
        self.writer = writer
        self.ws = ws
        self._raw = bytearray()  # bytes from the socket (WebSocket frames when ws)
        self._mqtt = bytearray()  # MQTT bytes not yet parsed
        # Packets read while waiting for a CONNACK or SUBACK, handed to ``run``.
        self._early: list[tuple[int, bytes]] = []
        self.receive_maximum = 65535
        # Why ``run`` returned, when it was an error (for reports).
        self.ended_by: str | None = None

    @classmethod
    async def open(cls, host: str, port: int, *, ws: bool, path: str = "/mqtt") -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        conn = cls(reader, writer, ws)
        if ws:
            try:
                await conn._handshake(host, port, path)
            except BaseException:
                writer.close()
                raise
        return conn

    async def _handshake(self, host: str, port: int, path: str) -> None:
        key = base64.b64encode(os.urandom(16))
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
        )
        self.writer.write(request.encode())
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise MqttError("connection closed during the websocket upgrade") from exc
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise MqttError(f"websocket upgrade refused: {lines[0]!r}")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
        }
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise MqttError("websocket upgrade: wrong Sec-WebSocket-Accept")

    def send(self, data: bytes) -> None:
        self.writer.write(ws_frame(data) if self.ws else data)

    def close(self) -> None:
        self.writer.close()

    async def disconnect(self) -> None:
        try:
            self.send(b"\xe0\x00")
            await asyncio.wait_for(self.writer.drain(), 2.0)
        except (OSError, TimeoutError):
            pass
        finally:
            self.writer.close()

    def _frames(self) -> None:
        """Move complete WebSocket frames from ``_raw`` into ``_mqtt``."""
        raw = self._raw
        pos = 0
        while len(raw) - pos >= 2:
            b0, b1 = raw[pos], raw[pos + 1]
            n = b1 & 0x7F
            hdr = 2
            if n == 126:
                if len(raw) - pos < 4:
                    break
                (n,) = struct.unpack_from("!H", raw, pos + 2)
                hdr = 4
            elif n == 127:
                if len(raw) - pos < 10:
                    break
                (n,) = struct.unpack_from("!Q", raw, pos + 2)
                hdr = 10
            masked = b1 & 0x80
            if masked:
                hdr += 4
            if len(raw) - pos < hdr + n:
                break
            data = bytes(raw[pos + hdr : pos + hdr + n])
            if masked:
                data = _mask(data, bytes(raw[pos + hdr - 4 : pos + hdr]))
            pos += hdr + n
            opcode = b0 & 0x0F
            if opcode in (0x0, 0x1, 0x2):
                self._mqtt += data
            elif opcode == 0x8:
                raise MqttError("websocket closed by the broker")
            elif opcode == 0x9:
                self.writer.write(ws_frame(data, 0xA))
        del raw[:pos]

    def _packets(self) -> list[tuple[int, bytes]]:
        buf = self._mqtt
        out: list[tuple[int, bytes]] = []
        pos = 0
        while len(buf) - pos >= 2:
            got = _read_varint(buf, pos + 1)
            if got is None:
                break
            length, start = got
            if len(buf) - start < length:
                break
            out.append((buf[pos], bytes(buf[start : start + length])))
            pos = start + length
        del buf[:pos]
        return out

    async def read_packets(self) -> list[tuple[int, bytes]]:
        """The next packets (at least one); MqttError at end of stream."""
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise MqttError("connection closed by the broker")
            if self.ws:
                self._raw += chunk
                self._frames()
            else:
                self._mqtt += chunk
            packets = self._packets()
            if packets:
                return packets

    async def _expect(self, ptype: int) -> bytes:
        while True:
            packets = await self.read_packets()
            for i, (first, body) in enumerate(packets):
                if first >> 4 == ptype:
                    # What came with it or before it (a session's queued PUBLISHes,
                    # sent right after the CONNACK) is for ``run``: dropped, their
                    # PUBACKs would never go and the broker's in-flight window would
                    # fill up, stopping every later delivery.
                    self._early += [p for p in packets[:i] + packets[i + 1 :]]
                    return body
                if first >> 4 == DISCONNECT:
                    code = body[0] if body else 0
                    raise MqttError(f"DISCONNECT 0x{code:02x} while waiting for {ptype}")
                self._early.append((first, body))

    async def handshake(
        self,
        *,
        client_id: str,
        username: str | None,
        password: str | None,
        clean_start: bool = True,
        keepalive: int = 60,
        session_expiry: int = 0,
        subscribe: list[str] | None = None,
        qos: int = 1,
    ) -> bool:
        """CONNECT (and SUBSCRIBE): MqttError unless the broker accepts; returns
        whether the session was present."""
        self.send(
            connect_packet(
                client_id=client_id,
                username=username,
                password=password,
                clean_start=clean_start,
                keepalive=keepalive,
                session_expiry=session_expiry,
            )
        )
        body = await self._expect(CONNACK)
        if len(body) < 2 or body[1] != 0:
            raise MqttError(f"CONNACK 0x{body[1]:02x}" if len(body) > 1 else "short CONNACK")
        self._connack_properties(body)
        present = bool(body[0] & 0x01)
        if subscribe:
            self.send(subscribe_packet(1, subscribe, qos))
            body = await self._expect(SUBACK)
            got = _read_varint(body, 2)
            if got is None:
                raise MqttError("short SUBACK")
            plen, pos = got
            codes = body[pos + plen :]
            if len(codes) != len(subscribe) or any(c > 2 for c in codes):
                raise MqttError(f"SUBACK {codes.hex()}")
        return present

    def _connack_properties(self, body: bytes) -> None:
        got = _read_varint(body, 2)
        if got is None:
            return
        plen, pos = got
        end = pos + plen
        while pos < end:
            prop = body[pos]
            pos += 1
            if prop == 0x21:  # receive maximum
                (self.receive_maximum,) = struct.unpack_from("!H", body, pos)
                pos += 2
            elif prop in (0x24, 0x25, 0x28, 0x29, 0x2A, 0x01, 0x17, 0x19):
                pos += 1
            elif prop in (0x13, 0x22):
                pos += 2
            elif prop in (0x11, 0x27, 0x18, 0x02):
                pos += 4
            elif prop in (0x12, 0x1A, 0x1C, 0x1F, 0x03, 0x08, 0x15):
                (n,) = struct.unpack_from("!H", body, pos)
                pos += 2 + n
            elif prop == 0x26:  # user property: two strings
                for _ in range(2):
                    (n,) = struct.unpack_from("!H", body, pos)
                    pos += 2 + n
            else:
                return  # unknown property: stop reading, keep the defaults

    async def run(self, on_publish: Callable[[Publish], None]) -> None:
        """Read until the connection ends: PUBACK every QoS 1 PUBLISH (batched per
        read) and hand each PUBLISH to ``on_publish``. Returns at end of stream."""
        try:
            while True:
                acks = bytearray()
                early, self._early = self._early, []
                for first, body in early or await self.read_packets():
                    ptype = first >> 4
                    if ptype == PUBLISH:
                        pub = parse_publish(first, body)
                        if pub.qos:
                            acks += puback_packet(pub.packet_id)
                        on_publish(pub)
                    elif ptype == DISCONNECT:
                        self.ended_by = f"DISCONNECT 0x{body[0] if body else 0:02x}"
                        return
                if acks:
                    self.send(bytes(acks))
        except (MqttError, OSError, ValueError) as exc:
            self.ended_by = f"{type(exc).__name__}: {str(exc)[:60]}"
            return
