"""The decimal digits Java 17's ``Float.toString`` and ``Double.toString`` print.

Debezium's JSON holds a ``real`` column as the digits of ``Float.toString`` (Jackson's
``FloatNode``), which a JSON reader then parses as a double. Before JDK 19 those digits are
not always the shortest that identify the float: integral floats keep their integer digits
minus the ones below the float's precision, and other floats stop generating digits at a
margin of half a unit in the last place of a 24-bit significand (half that below a power of
two), with at least two digits in scientific notation. PostgreSQL prints the shortest
digits, so ``float(text)`` of a ``real`` can differ from what parsing Debezium's JSON gives;
:func:`java_float_value` reproduces the latter. :func:`java_double_string` is
``Double.toString``, which pgjdbc uses when it re-renders geometric values. Both were checked
against real Java 17 output for hundreds of thousands of values
(``tests/unit/test_types_javafloat.py``).
"""

from __future__ import annotations

import math
import struct
from typing import Final

_FLOAT: Final = struct.Struct("<f")
_BITS: Final = struct.Struct("<I")
_DOUBLE: Final = struct.Struct("<d")
_BITS64: Final = struct.Struct("<Q")
# floor(p * log10(2)): decimal digits below the precision of an integral float.
_INSIGNIFICANT: Final = tuple(int(p * math.log10(2)) for p in range(64))
# Bits of 5**i, as FloatingDecimal tabulates them to choose its arithmetic.
_FIVE_BITS: Final = tuple((5**i).bit_length() for i in range(27))


def _five_bits(power: int) -> int:
    return _FIVE_BITS[power] if power < len(_FIVE_BITS) else power * 3


def java_float_value(value: float) -> float:
    """The double a JSON reader gets from Java's ``Float.toString(value)``;
    ``value`` must be representable as a float (it is rounded to one first)."""
    if value == 0.0 or not math.isfinite(value):
        return value
    bits = _BITS.unpack(_FLOAT.pack(value))[0]
    digits, exponent = java_float_digits(bits & 0x7FFFFFFF)
    magnitude = float(f"0.{digits}e{exponent}")
    return -magnitude if bits >> 31 else magnitude


def java_float_digits(bits: int) -> tuple[str, int]:
    """Digits ``d1d2...`` and decimal exponent ``e`` with value ``0.d1d2... x 10**e`` of a
    positive finite non-zero float given by its IEEE bits."""
    fraction, biased = bits & 0x7FFFFF, bits >> 23
    if biased == 0:  # subnormal: normalise, fewer significant bits
        significant = fraction.bit_length()
        shift = 24 - significant
        fraction <<= shift
        binary_exponent = 1 - shift - 127
    else:
        fraction |= 0x800000
        binary_exponent = biased - 127
        significant = 24
    return _digits(fraction << 29, binary_exponent, significant)  # into a double's layout


def java_double_digits(bits: int) -> tuple[str, int]:
    """:func:`java_float_digits` for a positive finite non-zero double."""
    fraction, biased = bits & ((1 << 52) - 1), bits >> 52
    if biased == 0:
        significant = fraction.bit_length()
        shift = 53 - significant
        fraction <<= shift
        binary_exponent = 1 - shift - 1023
    else:
        fraction |= 1 << 52
        binary_exponent = biased - 1023
        significant = 53
    return _digits(fraction, binary_exponent, significant)


def java_double_string(value: float) -> str:
    """``Double.toString(value)``: ``1.0``, ``0.001``, ``1.0E-4``, ``1.23456789E8``..."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    bits = _BITS64.unpack(_DOUBLE.pack(value))[0]
    sign = "-" if bits >> 63 else ""
    if value == 0.0:
        return sign + "0.0"
    digits, exponent = java_double_digits(bits & ((1 << 63) - 1))
    if 0 < exponent <= 7:
        whole, rest = digits[:exponent].ljust(exponent, "0"), digits[exponent:]
        return f"{sign}{whole}.{rest or '0'}"
    if -3 < exponent <= 0:
        return f"{sign}0.{'0' * -exponent}{digits}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent - 1}"


def _digits(significand: int, binary_exponent: int, significant: int) -> tuple[str, int]:
    """FloatingDecimal's dtoa on a 53-bit significand field."""
    tail_zeros = (significand & -significand).bit_length() - 1
    fract_bits = 53 - tail_zeros
    tiny_bits = max(0, fract_bits - binary_exponent - 1)
    if tiny_bits == 0 and -21 <= binary_exponent <= 62:
        return _integral(significand, binary_exponent, significant)
    return _generate(significand, binary_exponent, significant, tail_zeros, fract_bits, tiny_bits)


def _integral(significand: int, binary_exponent: int, significant: int) -> tuple[str, int]:
    """An integral float: its integer digits, rounded past the float's precision."""
    insignificant = 0
    if binary_exponent > significant:
        p2 = binary_exponent - significant - 1
        insignificant = _INSIGNIFICANT[p2] if 1 < p2 < len(_INSIGNIFICANT) else 0
    if binary_exponent >= 52:
        value = significand << (binary_exponent - 52)
    else:
        value = significand >> (52 - binary_exponent)
    if insignificant:
        power = 10**insignificant
        value, residue = divmod(value, power)
        if residue >= power >> 1:
            value += 1
    text = str(value)
    stripped = text.rstrip("0")
    return stripped, len(text) + insignificant


def _estimate_exponent(significand: int, binary_exponent: int) -> int:
    # floor of a slightly low estimate of log10(value), as FloatingDecimal computes it
    mantissa = 1.0 + (significand & ((1 << 52) - 1)) / float(1 << 52)
    estimate = (mantissa - 1.5) * 0.289529654 + 0.176091259 + binary_exponent * 0.301029995663981
    return math.floor(estimate)


def _generate(
    significand: int,
    binary_exponent: int,
    significant: int,
    tail_zeros: int,
    fract_bits: int,
    tiny_bits: int,
) -> tuple[str, int]:
    """Free-format digit generation with Java's margins and termination rules."""
    dec_exp = _estimate_exponent(significand, binary_exponent)
    b5 = max(0, -dec_exp)
    b2 = b5 + tiny_bits + binary_exponent
    s5 = max(0, dec_exp)
    s2 = s5 + tiny_bits
    m5, m2 = b5, b2 - significant
    fraction = significand >> tail_zeros
    b2 -= fract_bits - 1
    common = min(b2, s2)
    b2, s2, m2 = b2 - common, s2 - common, m2 - common
    if fract_bits == 1:  # a power of two: the gap below is half the gap above
        m2 -= 1
    if m2 < 0:
        b2, s2, m2 = b2 - m2, s2 - m2, 0
    # Java picks 32-bit, 64-bit or big-integer arithmetic by size. The fixed-width loops
    # wrap on overflow (a wrapped non-positive margin stops generation); the big-integer
    # one tests "high" as b + m >= 10s where the others test b + m > 10s.
    b_bits = fract_bits + b2 + _five_bits(b5)
    tens_bits = s2 + 1 + _five_bits(s5 + 1)
    width = 0 if max(b_bits, tens_bits) >= 64 else 32 if max(b_bits, tens_bits) < 32 else 64
    b = fraction * 5**b5 << b2
    s = 5**s5 << s2
    m = 5**m5 << m2
    tens = s * 10
    digits: list[int] = []
    q, b = divmod(b, s)
    b, m = b * 10, _wrap(m * 10, width)
    low, high = b < m, _high(b, m, tens, width)
    if q == 0 and not high:
        dec_exp -= 1
    else:
        digits.append(q)
    if dec_exp < -3 or dec_exp >= 8:  # scientific notation prints at least two digits
        low = high = False
    while not low and not high:
        q, b = divmod(b, s)
        b, m = b * 10, _wrap(m * 10, width)
        if m > 0:
            low, high = b < m, _high(b, m, tens, width)
        else:
            low = high = True
        digits.append(q)
    difference = 2 * b - tens
    if high and (not low or difference > 0 or (difference == 0 and digits[-1] & 1)):
        return _round_up(digits, dec_exp + 1)
    return "".join(map(str, digits)), dec_exp + 1


def _wrap(value: int, width: int) -> int:
    """``value`` as a signed ``width``-bit integer would hold it (0: no limit)."""
    if not width:
        return value
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def _high(b: int, m: int, tens: int, width: int) -> bool:
    return b + m >= tens if not width else _wrap(b + m, width) > tens


def _round_up(digits: list[int], exponent: int) -> tuple[str, int]:
    """Add one to the last digit; carried-over digits become zeros but stay (Java prints them)."""
    index = len(digits) - 1
    while index >= 0 and digits[index] == 9:
        index -= 1
    zeros = "0" * (len(digits) - index - 1)
    if index < 0:
        return "1" + zeros[1:], exponent + 1
    return "".join(map(str, digits[:index])) + str(digits[index] + 1) + zeros, exponent
