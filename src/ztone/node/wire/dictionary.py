"""ZeroTier's text key/value Dictionary (PROTOCOL-NETWORK-SERVICE A.1, CORE §1.7).

Shape: ``key=value`` entries separated by a single ``\\n``, no trailing newline.
Keys are raw; values are escaped so the whole blob is NUL-free::

    0x00 -> \\0    0x0d -> \\r    0x0a -> \\n    0x5c -> \\\\    0x3d -> \\e

On reading, a backslash followed by any other byte yields that byte; a value ends
at NUL, CR or LF; the blob ends at its first NUL. Duplicate keys are allowed and a
lookup returns the first. Integers are written as exactly 16 lower-case hex digits
(negative: ``-`` and the magnitude) and read as ``strtoull(..., 16)`` does.
"""

from __future__ import annotations

from collections.abc import Iterator

from ztone.errors import MalformedPacket
from ztone.util.ctext import U64_MAX, strtoull

_ESCAPE = {0x00: b"\\0", 0x0D: b"\\r", 0x0A: b"\\n", 0x5C: b"\\\\", 0x3D: b"\\e"}
_UNESCAPE = {ord("r"): 0x0D, ord("n"): 0x0A, ord("0"): 0x00, ord("e"): 0x3D}
_FORBIDDEN_KEY_BYTES = frozenset(b"\x00\r\n=")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def escape_value(value: bytes) -> bytes:
    """Escape a raw value for the wire."""
    if not any(b in _ESCAPE for b in value):
        return value
    return b"".join(_ESCAPE.get(b, bytes((b,))) for b in value)


def unescape_value(raw: bytes) -> bytes:
    """Undo :func:`escape_value` (raw must already stop before CR/LF/NUL)."""
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b == 0x5C:
            i += 1
            if i >= n:
                break  # a trailing lone backslash escapes nothing
            b = raw[i]
            out.append(_UNESCAPE.get(b, b))
        else:
            out.append(b)
        i += 1
    return bytes(out)


def parse_hex_u64(text: bytes | str) -> int:
    """Read an unsigned integer as C ``strtoull(text, NULL, 16)`` would."""
    return strtoull(text, 16)


def parse_hex_i64(text: bytes | str) -> int:
    """Read a signed integer as C ``strtoll(text, NULL, 16)`` would (clamped)."""
    s = (text.encode("latin-1") if isinstance(text, str) else bytes(text)).strip()
    negative = s.startswith(b"-")
    magnitude = parse_hex_u64(s[1:] if s[:1] in (b"-", b"+") else s)
    if negative:
        return -min(magnitude, 1 << 63)
    return min(magnitude, (1 << 63) - 1)


def format_u64(value: int) -> str:
    """16 lower-case hex digits, zero padded (``Utils::hex(uint64_t)``)."""
    return f"{value & U64_MAX:016x}"


def format_i64(value: int) -> str:
    return f"-{-value:016x}" if value < 0 else f"{value:016x}"


class Dictionary:
    """An ordered multi-map of byte keys to byte values with ZeroTier's encoding."""

    __slots__ = ("_entries",)

    def __init__(self, entries: list[tuple[bytes, bytes]] | None = None) -> None:
        self._entries: list[tuple[bytes, bytes]] = list(entries) if entries else []

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Dictionary:
        """Decode a serialized dictionary. Never fails: garbage lines are skipped."""
        blob = bytes(data)
        nul = blob.find(b"\x00")
        if nul >= 0:
            blob = blob[:nul]
        entries: list[tuple[bytes, bytes]] = []
        for line in blob.replace(b"\r", b"\n").split(b"\n"):
            key, eq, raw = line.partition(b"=")
            if not eq or not key:
                continue
            entries.append((key, unescape_value(raw)))
        return cls(entries)

    def serialize(self) -> bytes:
        return b"\n".join(k + b"=" + escape_value(v) for k, v in self._entries)

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        k = key.encode() if isinstance(key, str) else key
        return any(ek == k for ek, _ in self._entries)

    def keys(self) -> list[str]:
        return [k.decode("latin-1") for k, _ in self._entries]

    # --- writers -------------------------------------------------------------

    def add(self, key: str | bytes, value: bytes | bytearray | str | bool | int) -> None:
        """Append an entry. ``bool`` -> 1/0, ``int`` -> 16 hex digits, ``str`` -> UTF-8."""
        k = key.encode() if isinstance(key, str) else bytes(key)
        if not k or any(b in _FORBIDDEN_KEY_BYTES for b in k):
            raise ValueError(f"invalid dictionary key {k!r}")
        v: bytes
        if isinstance(value, bool):
            v = b"1" if value else b"0"
        elif isinstance(value, int):
            v = format_i64(value).encode() if value < 0 else format_u64(value).encode()
        elif isinstance(value, str):
            v = value.encode()
        else:
            v = bytes(value)
        self._entries.append((k, v))

    def set(self, key: str | bytes, value: bytes | bytearray | str | bool | int) -> None:
        """Replace every entry for ``key`` by one new entry (kept at the first's place)."""
        k = key.encode() if isinstance(key, str) else bytes(key)
        first = next((i for i, (ek, _) in enumerate(self._entries) if ek == k), None)
        self._entries = [(ek, ev) for ek, ev in self._entries if ek != k]
        self.add(k, value)
        if first is not None:
            self._entries.insert(first, self._entries.pop())

    def remove(self, key: str | bytes) -> None:
        k = key.encode() if isinstance(key, str) else key
        self._entries = [(ek, ev) for ek, ev in self._entries if ek != k]

    # --- readers -------------------------------------------------------------

    def get(self, key: str | bytes) -> bytes | None:
        """The first value for ``key``, or ``None``."""
        k = key.encode() if isinstance(key, str) else key
        for ek, ev in self._entries:
            if ek == k:
                return ev
        return None

    def get_str(self, key: str | bytes, default: str = "") -> str:
        v = self.get(key)
        return default if v is None else v.decode("utf-8", errors="replace")

    def get_u64(self, key: str | bytes, default: int = 0) -> int:
        """``getUI``: hex via strtoull; ``default`` when missing or empty."""
        v = self.get(key)
        if not v:
            return default
        return parse_hex_u64(v[:127])

    def get_i64(self, key: str | bytes, default: int = 0) -> int:
        v = self.get(key)
        if not v:
            return default
        return parse_hex_i64(v[:127])

    def get_bool(self, key: str | bytes, default: bool = False) -> bool:
        """``getB``: true iff the first byte is 1, t or T; ``default`` when missing."""
        v = self.get(key)
        if v is None:
            return default
        return v[:1] in (b"1", b"t", b"T")

    def require(self, key: str | bytes) -> bytes:
        v = self.get(key)
        if v is None:
            raise MalformedPacket(f"dictionary lacks key {key!r}")
        return v

    def __repr__(self) -> str:
        return f"Dictionary({self._entries!r})"
