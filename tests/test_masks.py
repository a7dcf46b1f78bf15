"""Tests for apactors.model.masks: bit order, set algebra, kernel parsing, APQNs."""

from __future__ import annotations

import copy
import pickle

import pytest

from apactors.model.masks import (
    Mask,
    MaskSyntaxError,
    apqn_apid,
    apqn_apqi,
    format_apqn,
    make_apqn,
    parse_apqn,
    parse_id,
    parse_mask_spec,
)

# -- bit order and renderings ----------------------------------------------------------------


def test_id0_is_most_significant_bit_of_byte0() -> None:
    s = Mask.of([0]).to_sysfs()
    assert s.startswith("0x80")
    assert len(s) == 2 + 64
    assert s == "0x8" + "0" * 63
    assert Mask.of([0]).bits == 1 << 255


def test_id255_is_last_bit_and_byte_boundaries() -> None:
    assert Mask.of([255]).to_sysfs() == "0x" + "0" * 63 + "1"
    assert Mask.of([255]).bits == 1
    assert Mask.of([7]).to_sysfs().startswith("0x01")
    assert Mask.of([8]).to_sysfs().startswith("0x0080")
    assert Mask.of([1, 2, 3, 4, 5, 7]).to_sysfs().startswith("0x7d00")


def test_iteration_ascending_and_queries() -> None:
    m = Mask.of([200, 3, 0, 71, 3])
    assert list(m) == [0, 3, 71, 200]
    assert m.ids() == (0, 3, 71, 200)
    assert m.to_json() == [0, 3, 71, 200]
    assert len(m) == 4 and bool(m)
    assert 3 in m and 71 in m and 4 not in m and 255 not in m
    assert m.first() == 0
    assert Mask.of([9, 250]).first() == 9
    assert repr(Mask.of([3, 4])) == "Mask(3,4)"
    assert repr(Mask.EMPTY) == "Mask()"


def test_empty() -> None:
    assert Mask.EMPTY == Mask.of([]) == Mask.from_bits(0)
    assert not Mask.EMPTY
    assert len(Mask.EMPTY) == 0
    assert list(Mask.EMPTY) == []
    assert Mask.EMPTY.first() is None
    assert Mask.EMPTY.to_sysfs() == "0x" + "0" * 64


def test_full_mask() -> None:
    full = Mask.of(range(256))
    assert len(full) == 256
    assert full.ids() == tuple(range(256))
    assert full.to_sysfs() == "0x" + "f" * 64


# -- set algebra ------------------------------------------------------------------------------


def test_set_algebra() -> None:
    a, b = Mask.of([1, 2, 3]), Mask.of([3, 4])
    assert a | b == Mask.of([1, 2, 3, 4])
    assert a & b == Mask.of([3])
    assert a - b == Mask.of([1, 2])
    assert b - a == Mask.of([4])
    assert a.with_id(200) == Mask.of([1, 2, 3, 200])
    assert a.with_id(3) == a
    assert a.without_id(2) == Mask.of([1, 3])
    assert a.without_id(9) == a
    assert Mask.of([1, 3]).issubset(a) and not a.issubset(b)
    assert Mask.of([1]).isdisjoint(b) and not a.isdisjoint(b)


def test_immutable_hashable_and_value_semantics() -> None:
    a = Mask.of([1, 2])
    b = a.with_id(5)
    assert a == Mask.of([1, 2])  # with_id returned a new mask
    assert b != a
    with pytest.raises(AttributeError):
        a.bits = 0  # type: ignore[misc]
    assert {Mask.of([1, 2]), Mask.of([2, 1]), Mask.of([3])} == {a, Mask.of([3])}
    assert pickle.loads(pickle.dumps(b)) == b
    assert copy.copy(b) is b and copy.deepcopy(b) is b
    assert (a == {1, 2}) is False


def test_invalid_ids() -> None:
    for bad in (-1, 256, 1000):
        with pytest.raises(ValueError):
            Mask.of([bad])
        with pytest.raises(ValueError):
            Mask.EMPTY.with_id(bad)
        with pytest.raises(ValueError):
            Mask.EMPTY.without_id(bad)
        with pytest.raises(ValueError):
            _ = bad in Mask.EMPTY
    for wrong_type in ("3", 3.0, True, None):
        with pytest.raises(TypeError):
            Mask.of([wrong_type])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        Mask.from_bits(1 << 256)
    with pytest.raises(ValueError):
        Mask.from_bits(-1)


def test_truncated_crycb_formats() -> None:
    apm = Mask.of([0, 5, 63, 64, 200])
    aqm = Mask.of([0, 15, 16, 255])
    assert apm.truncated(64) == Mask.of([0, 5, 63])
    assert aqm.truncated(16) == Mask.of([0, 15])
    assert apm.truncated(0) == Mask.EMPTY
    assert apm.truncated(256) == apm
    with pytest.raises(ValueError):
        apm.truncated(257)


# -- apmask / aqmask syntax --------------------------------------------------------------------


def test_domain_model_example_absolute() -> None:
    # §7.2: apmask 0x7d00… = adapters 1, 2, 3, 4, 5, 7; aqmask 0x8000… = domain 0
    apm = parse_mask_spec("0x7d00", Mask.EMPTY)
    aqm = parse_mask_spec("0x8000000000000000", Mask.EMPTY)
    assert apm.ids() == (1, 2, 3, 4, 5, 7)
    assert aqm.ids() == (0,)
    reserved = [make_apqn(a, d) for a in apm for d in aqm]
    assert [format_apqn(q) for q in reserved] == [
        "01.0000", "02.0000", "03.0000", "04.0000", "05.0000", "07.0000",
    ]


def test_absolute_is_left_aligned_and_padded() -> None:
    assert parse_mask_spec("0x8", Mask.EMPTY) == Mask.of([0])
    assert parse_mask_spec("0x1", Mask.EMPTY) == Mask.of([3])
    assert parse_mask_spec("0x01", Mask.EMPTY) == Mask.of([7])
    assert parse_mask_spec("0x04", Mask.EMPTY) == Mask.of([5])
    assert parse_mask_spec("0x" + "0" * 63 + "1", Mask.EMPTY) == Mask.of([255])
    assert parse_mask_spec("0x" + "f" * 64, Mask.EMPTY) == Mask.of(range(256))
    # the kernel also takes the digits without prefix, or with a bare "x"
    assert parse_mask_spec("7d", Mask.EMPTY) == Mask.of([1, 2, 3, 4, 5, 7])
    assert parse_mask_spec("x7D", Mask.EMPTY) == Mask.of([1, 2, 3, 4, 5, 7])


def test_absolute_replaces_current_and_accepts_newline() -> None:
    cur = Mask.of([0, 100])
    assert parse_mask_spec("0x40\n", cur) == Mask.of([1])
    assert parse_mask_spec("  0x40 ", cur) == Mask.of([1])
    assert parse_mask_spec("0x", cur) == Mask.EMPTY  # no digits: all zero, as the kernel
    assert parse_mask_spec("0x0", cur) == Mask.EMPTY


def test_sysfs_rendering_round_trips() -> None:
    for ids in ([], [0], [255], [1, 2, 3, 4, 5, 7], list(range(0, 256, 7))):
        m = Mask.of(ids)
        assert parse_mask_spec(m.to_sysfs(), Mask.of([9])) == m


@pytest.mark.parametrize(
    "spec",
    [
        "0x" + "0" * 65,  # 260 bits
        "0x" + "f" * 64 + "0",
        "0x7g",
        "0X7d",  # the kernel skips only a lowercase "0x"
        "zz",
        "0x7d 00",
        "0x7d\n\n1",
    ],
)
def test_absolute_errors(spec: str) -> None:
    with pytest.raises(MaskSyntaxError):
        parse_mask_spec(spec, Mask.EMPTY)


def test_absolute_too_long_for_nbits() -> None:
    assert parse_mask_spec("0xffff", Mask.EMPTY, nbits=16) == Mask.of(range(16))
    with pytest.raises(MaskSyntaxError, match="16 bits"):
        parse_mask_spec("0xfffff", Mask.EMPTY, nbits=16)
    with pytest.raises(ValueError):
        parse_mask_spec("0x1", Mask.EMPTY, nbits=12)  # not a multiple of 8


def test_mask_syntax_error_is_value_error() -> None:
    assert issubclass(MaskSyntaxError, ValueError)


def test_relative_domain_model_example() -> None:
    cur = Mask.of([6, 0xF0, 9])
    new = parse_mask_spec("+0,-6,+0x47,-0xf0", cur)
    assert new == Mask.of([0, 9, 0x47])
    assert cur == Mask.of([6, 0xF0, 9])  # the current mask is not modified


def test_relative_elements_ranges_and_order() -> None:
    assert parse_mask_spec("+3", Mask.of([1])) == Mask.of([1, 3])
    assert parse_mask_spec("-0x4", Mask.of([3, 4])) == Mask.of([3])
    assert parse_mask_spec("+3,-0x4,+0x47", Mask.of([4])) == Mask.of([3, 0x47])
    assert parse_mask_spec("+3-5", Mask.EMPTY) == Mask.of([3, 4, 5])  # inclusive range
    assert parse_mask_spec("+0-255,-1-254", Mask.EMPTY) == Mask.of([0, 255])
    assert parse_mask_spec("+3,-3", Mask.EMPTY) == Mask.EMPTY  # applied in order
    assert parse_mask_spec("-3,+3", Mask.EMPTY) == Mask.of([3])
    assert parse_mask_spec("+3,", Mask.EMPTY) == Mask.of([3])
    assert parse_mask_spec("+3\n+4\n", Mask.EMPTY) == Mask.of([3, 4])
    assert parse_mask_spec("+010", Mask.EMPTY) == Mask.of([8])  # base 0: leading 0 is octal
    assert parse_mask_spec("+0", Mask.EMPTY) == Mask.of([0])


@pytest.mark.parametrize(
    "spec",
    [
        "+256",
        "+0x100",
        "+3,4",  # every element needs its sign
        "+",
        "-",
        "+x",
        "+3-1",  # reversed range
        "+3-256",
        "+3-",
        "+08",  # octal 0, then junk '8'
        "+3;+4",
        "+ 3",
        "+3 +4",
    ],
)
def test_relative_errors(spec: str) -> None:
    with pytest.raises(MaskSyntaxError):
        parse_mask_spec(spec, Mask.of([1]))


def test_relative_respects_nbits() -> None:
    assert parse_mask_spec("+15", Mask.EMPTY, nbits=16) == Mask.of([15])
    with pytest.raises(MaskSyntaxError, match="out of range"):
        parse_mask_spec("+16", Mask.EMPTY, nbits=16)


# -- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5),
        ("255", 255),
        ("0", 0),
        ("0x1f", 31),
        ("0X1F", 31),
        ("010", 8),  # kstrtoul base 0: octal
        ("+7", 7),
        ("7\n", 7),
        ("300", 300),  # no range check here: the stores answer -ENODEV
        ("0xffffffffffffffff", 2**64 - 1),
    ],
)
def test_parse_id(text: str, value: int) -> None:
    assert parse_id(text) == value


@pytest.mark.parametrize(
    "text", ["", "x", "0x", "08", "5a", " 5", "5 ", "-1", "5\n\n", "0x10000000000000000", "++5"]
)
def test_parse_id_rejects_junk(text: str) -> None:
    with pytest.raises(ValueError):
        parse_id(text)


# -- APQNs -------------------------------------------------------------------------------------


def test_apqn_pack_and_format() -> None:
    q = make_apqn(3, 5)
    assert q == 0x0305
    assert apqn_apid(q) == 3 and apqn_apqi(q) == 5
    assert format_apqn(q) == "03.0005"
    assert format_apqn(make_apqn(0x0A, 0xFF)) == "0a.00ff"
    assert parse_apqn("04.0047") == make_apqn(4, 0x47)


def test_apqn_round_trip() -> None:
    for apid in (0, 3, 0x0A, 0xFF):
        for apqi in (0, 5, 0x47, 0xFF):
            q = make_apqn(apid, apqi)
            assert parse_apqn(format_apqn(q)) == q
    assert parse_apqn("0A.00FF") == make_apqn(10, 255)


@pytest.mark.parametrize(
    "text", ["3.5", "0x0305", "03.00005", "003.0005", "03.0100", "03:0005", "", "zz.0005", "03.", "03.0005\n"]
)
def test_parse_apqn_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_apqn(text)


def test_parse_apqn_message_is_clear() -> None:
    with pytest.raises(ValueError, match="AA.DDDD"):
        parse_apqn("3.5")


def test_make_apqn_range() -> None:
    with pytest.raises(ValueError):
        make_apqn(256, 0)
    with pytest.raises(ValueError):
        make_apqn(0, -1)
