"""A minimal Redis client for the online reader's one hot command: pipelined, pre-packed ``HMGET``.

redis-py packs every argument and parses every reply element in Python; for
one entity x 50 features that is most of a read. The reader's commands are
fixed apart from the key, so the field part is packed once
(:func:`pack_fields`) and replies are parsed here with ``bytes.find`` (RESP2,
which a connection speaks until it sends ``HELLO``).

>>> fields = pack_fields([b"a", b"bc"])
>>> hmget_command(b"k", fields, 2)
b'*4\\r\\n$5\\r\\nHMGET\\r\\n$1\\r\\nk\\r\\n$1\\r\\na\\r\\n$2\\r\\nbc\\r\\n'
>>> parse_arrays(b"*2\\r\\n$2\\r\\nhi\\r\\n$-1\\r\\n*0\\r\\n", 0, 2)
([[b'hi', None], []], 21)
>>> parse_arrays(b"*0\\r\\n*2\\r\\n$2\\r\\nhi", 0, 2)  # the second is incomplete: read more
([[]], 4)
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from workbench.errors import WorkbenchError


class RespError(WorkbenchError):
    """Redis answered with an error, or something that is not RESP."""


def pack_fields(fields: list[bytes]) -> bytes:
    return b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)


def hmget_command(key: bytes, packed_fields: bytes, n_fields: int) -> bytes:
    return b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n%s" % (n_fields + 2, len(key), key, packed_fields)


def parse_arrays(buf: bytes, pos: int, count: int) -> tuple[list[list[bytes | None]], int]:
    """Up to ``count`` whole arrays of bulk strings from ``buf[pos:]``, and where the last one ended.

    Fewer than ``count`` come back when ``buf`` ends inside one: read more,
    then go on from the returned position.
    """
    out: list[list[bytes | None]] = []
    size = len(buf)
    find = buf.find
    while len(out) < count:
        at = pos
        end = find(b"\r\n", at)
        if end < 0:
            break
        if buf[at] != 0x2A:  # '*'
            raise RespError(f"Redis replied {buf[at:end].decode(errors='replace')!r} to HMGET")
        n_items = int(buf[at + 1 : end])
        items: list[bytes | None] = []
        at = end + 2
        for _ in range(n_items):
            end = find(b"\r\n", at)
            if end < 0:
                break
            n = int(buf[at + 1 : end])
            if n < 0:
                items.append(None)
                at = end + 2
                continue
            start = end + 2
            at = start + n + 2
            if at > size:
                break
            items.append(buf[start : start + n])
        if len(items) < n_items:
            break
        out.append(items)
        pos = at
    return out, pos


class RespConnection:
    """One TCP connection (AUTH and SELECT on connect), reconnected once on failure; thread-safe."""

    def __init__(self, host: str, port: int, db: int = 0, password: str | None = None,
                 username: str | None = None, timeout_s: float = 5.0) -> None:  # fmt: skip
        self.address = (host, port)
        self.db, self.password, self.username, self.timeout_s = db, password, username, timeout_s
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @staticmethod
    def from_feast(connection_string: str) -> RespConnection | None:
        """A connection for Feast's ``host:port,db=N,password=...`` string; None when it needs more (TLS)."""
        from feast.infra.online_stores.redis import RedisOnlineStore

        nodes, params = RedisOnlineStore._parse_connection_string(connection_string)
        if len(nodes) != 1 or set(params) - {"db", "password", "username"}:
            return None
        node: dict[str, Any] = nodes[0]
        return RespConnection(node["host"], int(node["port"]), int(params.get("db", 0)),
                              params.get("password"), params.get("username"))  # fmt: skip

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = []
        if self.password:
            args = [b"AUTH", *([self.username.encode()] if self.username else []), str(self.password).encode()]
            hello.append(b"*%d\r\n" % len(args) + pack_fields(args))
        if self.db:
            hello.append(b"*2\r\n$6\r\nSELECT\r\n" + pack_fields([str(self.db).encode()]))
        if hello:
            sock.sendall(b"".join(hello))
            buf = b""
            while buf.count(b"\r\n") < len(hello):
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("Redis closed the connection")
                buf += chunk
            if any(not line.startswith(b"+") for line in buf.split(b"\r\n")[: len(hello)]):
                sock.close()
                raise RespError(f"Redis refused AUTH/SELECT: {buf.decode(errors='replace').strip()}")
        return sock

    def hmget(self, commands: list[bytes]) -> list[list[bytes | None]]:
        """Send the pre-packed HMGET commands in one write; their replies, in order."""
        with self._lock:
            try:
                return self._roundtrip(commands)
            except (OSError, ConnectionError):
                self._close()
                return self._roundtrip(commands)  # one reconnect: a server restart, an idle timeout

    def _roundtrip(self, commands: list[bytes]) -> list[list[bytes | None]]:
        if self._sock is None:
            self._sock = self._connect()
        sock = self._sock
        sock.sendall(commands[0] if len(commands) == 1 else b"".join(commands))
        replies: list[list[bytes | None]] = []
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            buf += chunk
            done, pos = parse_arrays(buf, 0, len(commands) - len(replies))
            replies += done
            if len(replies) == len(commands):
                return replies
            buf = buf[pos:]  # keep only the reply being received

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self) -> None:
        with self._lock:
            self._close()
