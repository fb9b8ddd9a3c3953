"""Feast's Redis row format, written directly: one server-side script call per view and flush.

Feast's ``online_write_batch`` reads every key's ``_ts:<view>`` field, builds
protobuf messages per row and skips rows that are not newer. A feature job
writes thousands of rows per second, so this writer keeps Feast's layout
exactly (key bin = serialized entity key + project; field
``mmh3("<view>:<feature>")`` = serialized ``ValueProto``; ``_ts:<view>`` =
serialized ``Timestamp``) but encodes values by hand and lets a Lua script
choose each row's timestamp atomically on the server:
``max(event time, stored + 1 µs)``. Timestamps then increase strictly per key
whatever wrote before (a materialize, another replica, a restarted job).

>>> encode_value(5), encode_value(0.5), encode_value("hi"), encode_value(["a", "b"]), encode_value(None)
(b' \\x05', b')\\x00\\x00\\x00\\x00\\x00\\x00\\xe0?', b'\\x12\\x02hi', b'b\\x06\\n\\x01a\\n\\x01b', b'')
>>> encode_value(-1)
b' \\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x01'
"""

from __future__ import annotations

import struct
from typing import Any

_F64 = struct.Struct("<d")

# KEYS: key bins. ARGV[1]: the view's timestamp field; ARGV[2]: every row packed in one
# string (one argument instead of 3 + 2 per field: the client packs each argument in
# Python), per key: seconds (>I8), nanos (>I4), field count (>I2), then per field its
# name (>I2 length + bytes) and value (>I4 length + bytes). Returns how many rows were written.
SCRIPT = """
local function varint(s, i)
  local result, scale = 0, 1
  while true do
    local b = string.byte(s, i)
    i = i + 1
    result = result + (b % 128) * scale
    if b < 128 then return result, i end
    scale = scale * 128
  end
end
local function decode(s)
  local sec, nanos, i = 0, 0, 1
  while i <= #s do
    local tag = string.byte(s, i)
    local v
    v, i = varint(s, i + 1)
    if tag == 8 then sec = v elseif tag == 16 then nanos = v end
  end
  return sec, nanos
end
local function enc(v)
  local out = {}
  while v >= 128 do
    out[#out + 1] = string.char(v % 128 + 128)
    v = math.floor(v / 128)
  end
  out[#out + 1] = string.char(v)
  return table.concat(out)
end
local ts_field, rows = ARGV[1], ARGV[2]
local a = 1
for k = 1, #KEYS do
  local sec, nanos, n
  sec, nanos, n, a = struct.unpack('>I8I4I2', rows, a)
  local stored = redis.call('HGET', KEYS[k], ts_field)
  if stored then
    local ssec, snanos = decode(stored)
    if ssec > sec or (ssec == sec and snanos >= nanos) then
      sec, nanos = ssec, snanos + 1000
      if nanos >= 1000000000 then sec, nanos = sec + 1, nanos - 1000000000 end
    end
  end
  local ts = ''
  if sec ~= 0 then ts = ts .. string.char(8) .. enc(sec) end
  if nanos ~= 0 then ts = ts .. string.char(16) .. enc(nanos) end
  local args = {ts_field, ts}
  for j = 1, n do
    local len
    len, a = struct.unpack('>I2', rows, a)
    args[#args + 1] = string.sub(rows, a, a + len - 1)
    a = a + len
    len, a = struct.unpack('>I4', rows, a)
    args[#args + 1] = string.sub(rows, a, a + len - 1)
    a = a + len
  end
  redis.call('HSET', KEYS[k], unpack(args))
end
return #KEYS
"""
_ROW = struct.Struct(">QIH")
_NAME = struct.Struct(">H")
_VALUE = struct.Struct(">I")


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def encode_value(value: Any) -> bytes:
    """A ``ValueProto`` for the kinds feature jobs write: Int64, Float64, String, Array(String), null."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x38" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x20" + _varint(value)
    if isinstance(value, float):
        return b"\x29" + _F64.pack(value)
    if isinstance(value, str):
        raw = value.encode()
        return b"\x12" + _varint(len(raw)) + raw
    if isinstance(value, list):
        body = b"".join(b"\x0a" + _varint(len(r)) + r for r in (str(v).encode() for v in value))
        return b"\x62" + _varint(len(body)) + body
    raise TypeError(f"cannot encode {type(value).__name__} as a Feast value")


class RedisRows:
    """Writes rows of one job's views; field names and key prefixes are computed once."""

    def __init__(self, client: Any, project: str, join_keys: dict[str, str], features: dict[str, list[str]]) -> None:
        from feast.infra.online_stores.helpers import _mmh3

        from workbench.promote.reader import key_prefix

        self._script = client.register_script(SCRIPT)
        self._project = project.encode()
        self._prefix = {view: key_prefix(jk) for view, jk in join_keys.items()}
        self._fields = {view: {f: _mmh3(f"{view}:{f}") for f in names} for view, names in features.items()}
        # per view, feature -> its field name with its length in front, as the script reads it
        self._name_len = {view: {f: _NAME.pack(len(b)) + b for f, b in names.items()}
                          for view, names in self._fields.items()}

    def write(self, view: str, rows: list[tuple[str, int, dict[str, bytes]]]) -> int:
        """``rows``: (entity key, event time in ms, feature -> :func:`encode_value` bytes); returns rows written.

        Event times before 1970 are written as 1970 (Feast's timestamps here are unsigned).
        """
        from workbench.promote.reader import entity_key_bytes

        if not rows:
            return 0
        prefix, project = self._prefix[view], self._project
        keys: list[bytes] = []
        parts: list[bytes] = []
        row, name_len, value_len = _ROW.pack, self._name_len[view], _VALUE.pack
        for entity, event_ms, values in rows:
            keys.append(entity_key_bytes(prefix, entity) + project)
            sec, ms = divmod(max(0, int(event_ms)), 1000)
            parts.append(row(sec, ms * 1_000_000, len(values)))
            for name, value in values.items():
                parts.append(name_len[name])
                parts.append(value_len(len(value)))
                parts.append(value)
        return int(self._script(keys=keys, args=[f"_ts:{view}".encode(), b"".join(parts)]))
