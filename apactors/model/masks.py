"""AP masks, ids and APQNs as the s390 AP bus and vfio_ap see them.

Everything here is pure and dependency free.

* :class:`Mask` is an immutable 256-bit bitmap in the kernel's AP bit order: id 0 is the most
  significant bit of byte 0 (``set_bit_inv``/``test_bit_inv``), so the sysfs rendering
  ``0x80000…`` means "id 0". Internally the whole bitmap is one Python ``int`` in which id ``i``
  is the bit ``1 << (255 - i)``; ``"%064x" % bits`` is then exactly the sysfs text.
* :func:`parse_mask_spec` implements the apmask/aqmask store syntax (absolute hex or a relative
  ``+id,-id,+a-b`` list), :func:`parse_id` the ``kstrtoul(buf, 0, …)`` id parsing of the sysfs
  stores.
* APQN helpers pack ``(APID, APQI)`` as ``APID << 8 | APQI`` and render it as ``AA.DDDD``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, NoReturn

__all__ = [
    "MASK_BITS",
    "MAX_ID",
    "Mask",
    "MaskSyntaxError",
    "format_apqn",
    "make_apqn",
    "apqn_apid",
    "apqn_apqi",
    "parse_apqn",
    "parse_id",
    "parse_mask_spec",
]

#: Number of ids a mask can hold (APXA: adapters and domains 0..255).
MASK_BITS = 256
#: Highest valid adapter/domain id.
MAX_ID = MASK_BITS - 1

_ALL_BITS = (1 << MASK_BITS) - 1
_ULONG_MAX = (1 << 64) - 1
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def _coerce_id(i: object) -> int:
    """Slow path of the id checks: accept int subclasses (not bool), reject the rest."""
    if isinstance(i, bool) or not isinstance(i, int):
        raise TypeError(f"AP id must be an int, got {type(i).__name__}")
    if not 0 <= i <= MAX_ID:
        raise ValueError(f"AP id {i} out of range 0..{MAX_ID}")
    return int(i)


class Mask:
    """An immutable set of AP ids (0..255) stored as a 256-bit bitmap in kernel bit order.

    Behaves like a small frozenset of ints: iteration yields ids in ascending order, ``in``,
    ``len``, truth value, ``|``, ``&``, ``-`` and equality/hashing work as expected. Ids outside
    0..255 raise :class:`ValueError` (non-int ids raise :class:`TypeError`).
    """

    __slots__ = ("bits",)

    bits: int
    EMPTY: ClassVar[Mask]

    def __init__(self, bits: int = 0) -> None:
        """Wrap a raw bitmap; prefer :meth:`of`, :meth:`from_bits` or :attr:`EMPTY`."""
        if isinstance(bits, bool) or not isinstance(bits, int):
            raise TypeError(f"mask bits must be an int, got {type(bits).__name__}")
        if bits < 0 or bits > _ALL_BITS:
            raise ValueError("mask bits out of range for a 256-bit mask")
        object.__setattr__(self, "bits", bits)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def of(cls, ids: Iterable[int]) -> Mask:
        """Mask containing exactly ``ids`` (any iterable of ints 0..255, duplicates allowed)."""
        bits = 0
        for i in ids:
            if i.__class__ is not int or not 0 <= i <= MAX_ID:
                i = _coerce_id(i)
            bits |= 1 << (MAX_ID - i)
        return _mk(bits) if cls is Mask else cls(bits)

    @classmethod
    def from_bits(cls, bits: int) -> Mask:
        """Mask from its raw integer (id ``i`` is bit ``1 << (255 - i)``)."""
        return cls(bits)

    # -- immutability / pickling ----------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Mask is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Mask is immutable")

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (Mask.from_bits, (self.bits,))

    def __copy__(self) -> Mask:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Mask:
        return self

    # -- set protocol (hot path: plain int arithmetic only) -------------------------------

    def __iter__(self) -> Iterator[int]:
        b = self.bits
        while b:
            n = b.bit_length()  # highest set bit = lowest id
            yield MASK_BITS - n
            b ^= 1 << (n - 1)

    def __contains__(self, i: object) -> bool:
        if i.__class__ is not int or not 0 <= i <= MAX_ID:  # type: ignore[operator]
            i = _coerce_id(i)
        return (self.bits >> (MAX_ID - i)) & 1 == 1  # type: ignore[operator]

    def __len__(self) -> int:
        return self.bits.bit_count()

    def __bool__(self) -> bool:
        return self.bits != 0

    def __or__(self, other: Mask) -> Mask:
        if not isinstance(other, Mask):
            return NotImplemented
        return _mk(self.bits | other.bits)

    def __and__(self, other: Mask) -> Mask:
        if not isinstance(other, Mask):
            return NotImplemented
        return _mk(self.bits & other.bits)

    def __sub__(self, other: Mask) -> Mask:
        """Set difference: ids in ``self`` and not in ``other``."""
        if not isinstance(other, Mask):
            return NotImplemented
        return _mk(self.bits & ~other.bits)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return self.bits == other.bits

    def __hash__(self) -> int:
        return hash((Mask, self.bits))

    def issubset(self, other: Mask) -> bool:
        """True if every id of ``self`` is in ``other``."""
        return self.bits & ~other.bits == 0

    def isdisjoint(self, other: Mask) -> bool:
        """True if ``self`` and ``other`` have no id in common."""
        return self.bits & other.bits == 0

    # -- single-id updates -----------------------------------------------------------------

    def with_id(self, i: int) -> Mask:
        """A copy with id ``i`` set."""
        if i.__class__ is not int or not 0 <= i <= MAX_ID:
            i = _coerce_id(i)
        return _mk(self.bits | (1 << (MAX_ID - i)))

    def without_id(self, i: int) -> Mask:
        """A copy with id ``i`` cleared."""
        if i.__class__ is not int or not 0 <= i <= MAX_ID:
            i = _coerce_id(i)
        return _mk(self.bits & ~(1 << (MAX_ID - i)))

    # -- queries and renderings -------------------------------------------------------------

    def ids(self) -> tuple[int, ...]:
        """The ids in ascending order."""
        return tuple(self)

    def first(self) -> int | None:
        """The lowest id, or None for the empty mask."""
        b = self.bits
        return MASK_BITS - b.bit_length() if b else None

    def truncated(self, n: int) -> Mask:
        """Only the ids < ``n`` (``n`` in 0..256).

        CRYCB formats 0 and 1 (APCB0) keep the first 64 adapters and 16 domains:
        ``apm.truncated(64)``, ``aqm.truncated(16)``.
        """
        if n.__class__ is not int or not 0 <= n <= MASK_BITS:
            raise ValueError(f"truncation width {n!r} out of range 0..{MASK_BITS}")
        return _mk(self.bits & (((1 << n) - 1) << (MASK_BITS - n)))

    def to_sysfs(self) -> str:
        """The sysfs rendering: ``0x`` and 64 hex digits, id 0 leftmost."""
        return f"0x{self.bits:064x}"

    def to_json(self) -> list[int]:
        """JSON-friendly form: the ids as a list, ascending."""
        return list(self)

    def __repr__(self) -> str:
        return f"Mask({','.join(map(str, self))})"


_new = object.__new__
_set = object.__setattr__


def _mk(bits: int) -> Mask:
    # Unchecked constructor for results of operations on valid masks (hot path).
    m = _new(Mask)
    _set(m, "bits", bits)
    return m


Mask.EMPTY = _mk(0)


# ----------------------------------------------------------------------------------------------
# Kernel-style parsing
# ----------------------------------------------------------------------------------------------


class MaskSyntaxError(ValueError):
    """An apmask/aqmask (or matrix) mask specification the kernel would reject with -EINVAL."""


def _strtoul_base0(s: str, pos: int) -> tuple[int, int]:
    """Parse an unsigned number at ``s[pos:]`` like ``simple_strtoul(…, 0)``.

    Returns ``(value, end)``; ``end == pos`` means no digit was consumed. Base 0: ``0x``/``0X``
    followed by a hex digit selects hex, a leading ``0`` octal, anything else decimal.
    """
    n = len(s)
    if pos < n and s[pos] == "0":
        if pos + 2 < n and s[pos + 1] in "xX" and s[pos + 2] in _HEXDIGITS:
            base, pos = 16, pos + 2
        else:
            base = 8
    else:
        base = 10
    end = pos
    value = 0
    while end < n:
        c = s[end]
        if c.isascii() and c.isalnum():
            d = int(c, 36)
            if d < base:
                value = value * base + d
                end += 1
                continue
        break
    return value, end


def parse_id(text: str) -> int:
    """Parse a sysfs id the way ``kstrtoul(buf, 0, &val)`` does.

    Accepts an optional leading ``+``, then ``0x``/``0X`` hex, ``0``-prefixed octal or decimal,
    then at most one trailing newline. No range check beyond ``unsigned long`` (the stores check
    their own limits). Raises :class:`ValueError` for anything else.
    """
    if not isinstance(text, str):
        raise TypeError(f"id text must be a str, got {type(text).__name__}")
    s = text[1:] if text.startswith("+") else text
    value, end = _strtoul_base0(s, 0)
    if end == 0:
        raise ValueError(f"invalid id {text!r}: expected decimal, 0x hex or 0 octal digits")
    if value > _ULONG_MAX:
        raise ValueError(f"id {text!r} out of range for unsigned long")
    rest = s[end:]
    if rest not in ("", "\n"):
        raise ValueError(f"invalid id {text!r}: junk {rest!r} after the number")
    return value


def _parse_absolute(s: str, nbits: int) -> Mask:
    # Left-aligned hex, as the AP bus's hex2bitmap: an optional "0x" (or bare "x") prefix, then
    # up to nbits/4 hex digits for ids 0,1,2,...; missing digits are zeros.
    i = 0
    if s.startswith("0x"):
        i = 2
    elif s.startswith("x"):
        i = 1
    digits = s[i:]
    bad = next((c for c in digits if c not in _HEXDIGITS), None)
    if bad is not None:
        raise MaskSyntaxError(
            f"invalid mask {s!r}: {bad!r} is not a hex digit "
            "(absolute masks are hex like 0x7d00, relative ones start with + or -)"
        )
    if len(digits) * 4 > nbits:
        raise MaskSyntaxError(
            f"invalid mask {s!r}: {len(digits)} hex digits exceed {nbits} bits "
            f"(at most {nbits // 4} digits)"
        )
    if not digits:
        return Mask.EMPTY
    return _mk(int(digits, 16) << (MASK_BITS - 4 * len(digits)))


def _parse_relative(s: str, current: Mask, nbits: int) -> Mask:
    # The AP bus's modify_bitmap: elements "+N", "-N", "+A-B", "-A-B" separated by commas (or
    # newlines); every element needs its own sign; numbers are simple_strtoul base 0.
    bits = current.bits
    pos, n = 0, len(s)
    while pos < n:
        sign = s[pos]
        if sign not in "+-":
            raise MaskSyntaxError(
                f"invalid mask {s!r}: expected '+' or '-' at offset {pos}, found {sign!r}"
            )
        pos += 1
        a, end = _strtoul_base0(s, pos)
        if end == pos:
            raise MaskSyntaxError(f"invalid mask {s!r}: expected a number at offset {pos}")
        if a >= nbits:
            raise MaskSyntaxError(f"invalid mask {s!r}: id {a} out of range 0..{nbits - 1}")
        pos = end
        z = a
        if pos < n and s[pos] == "-":
            pos += 1
            z, end = _strtoul_base0(s, pos)
            if end == pos:
                raise MaskSyntaxError(
                    f"invalid mask {s!r}: expected the end of a range at offset {pos}"
                )
            if z < a or z >= nbits:
                raise MaskSyntaxError(
                    f"invalid mask {s!r}: bad range {a}-{z} (need {a} <= end <= {nbits - 1})"
                )
            pos = end
        # ids a..z inclusive are the bits (255-z)..(255-a)
        chunk = ((1 << (z - a + 1)) - 1) << (MAX_ID - z)
        bits = bits | chunk if sign == "+" else bits & ~chunk
        while pos < n and s[pos] in ",\n":
            pos += 1
    return _mk(bits)


def parse_mask_spec(text: str, current: Mask, nbits: int = MASK_BITS) -> Mask:
    """Parse an apmask/aqmask store value and return the new mask.

    * Absolute: hex (``0x`` prefix optional, as in the kernel), left-aligned: the first hex
      digit holds ids 0-3; shorter input is padded with zeros on the right; more than
      ``nbits`` bits is an error. ``0x7d`` = ids 1, 2, 3, 4, 5, 7.
    * Relative (first character ``+`` or ``-``): a comma separated list of ``+ID``, ``-ID``,
      ``+A-B`` (inclusive range) applied in order to ``current``; each element needs its own
      sign; ids are decimal, ``0x`` hex or ``0`` octal and must be < ``nbits``.

    Surrounding whitespace (e.g. the newline ``echo`` appends) is ignored. Raises
    :class:`MaskSyntaxError` where the kernel store returns -EINVAL; the store then leaves the
    mask unchanged.
    """
    if not isinstance(text, str):
        raise TypeError(f"mask spec must be a str, got {type(text).__name__}")
    if not isinstance(current, Mask):
        raise TypeError(f"current must be a Mask, got {type(current).__name__}")
    if nbits.__class__ is not int or not 0 < nbits <= MASK_BITS or nbits % 8:
        raise ValueError(f"nbits must be a multiple of 8 in 8..{MASK_BITS}, got {nbits!r}")
    s = text.strip()
    if s[:1] in ("+", "-"):
        return _parse_relative(s, current, nbits)
    return _parse_absolute(s, nbits)


# ----------------------------------------------------------------------------------------------
# APQNs
# ----------------------------------------------------------------------------------------------


def make_apqn(apid: int, apqi: int) -> int:
    """Pack an adapter id and a domain id into an APQN (``apid << 8 | apqi``)."""
    if apid.__class__ is not int or not 0 <= apid <= MAX_ID:
        raise ValueError(f"APID {apid!r} out of range 0..{MAX_ID}")
    if apqi.__class__ is not int or not 0 <= apqi <= MAX_ID:
        raise ValueError(f"APQI {apqi!r} out of range 0..{MAX_ID}")
    return apid << 8 | apqi


def apqn_apid(q: int) -> int:
    """The adapter id (APID) of an APQN."""
    return (q >> 8) & 0xFF


def apqn_apqi(q: int) -> int:
    """The domain id (APQI) of an APQN."""
    return q & 0xFF


def format_apqn(q: int) -> str:
    """Render an APQN as sysfs does: ``AA.DDDD`` lowercase hex (``03.0005``)."""
    if q.__class__ is not int or not 0 <= q <= 0xFFFF:
        raise ValueError(f"APQN {q!r} out of range 0..0xffff")
    return f"{q >> 8:02x}.{q & 0xFF:04x}"


def parse_apqn(text: str) -> int:
    """Parse an APQN in the sysfs form ``AA.DDDD`` (hex, 2 + 4 digits; ``03.0005``).

    Raises :class:`ValueError` with an explanation for any other form.
    """
    if not isinstance(text, str):
        raise TypeError(f"APQN text must be a str, got {type(text).__name__}")
    apid_s, dot, apqi_s = text.partition(".")
    if (
        not dot
        or len(apid_s) != 2
        or len(apqi_s) != 4
        or not all(c in _HEXDIGITS for c in apid_s + apqi_s)
    ):
        raise ValueError(
            f"invalid APQN {text!r}: expected AA.DDDD in hex, the adapter as 2 and the domain "
            "as 4 hex digits (e.g. 03.0005 = adapter 3, domain 5)"
        )
    apqi = int(apqi_s, 16)
    if apqi > MAX_ID:
        raise ValueError(f"invalid APQN {text!r}: domain 0x{apqi:x} out of range 0..0xff")
    return int(apid_s, 16) << 8 | apqi
