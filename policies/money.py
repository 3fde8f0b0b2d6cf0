"""Money is Decimal yuan; rounding happens here and nowhere else (policy notes §0)."""

from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal("0.00")
FEN = Decimal("0.01")
RATIO_PLACES = Decimal("0.0001")


def fen(amount: Decimal) -> Decimal:
    """Round an exactly computed amount once, half up, to the fen."""
    return amount.quantize(FEN, ROUND_HALF_UP)  # rounding given by position: a keyword costs twice the call


def ratio4(value: Decimal) -> Decimal:
    return value.quantize(RATIO_PLACES, ROUND_HALF_UP)


def points(value: Decimal) -> Decimal:
    """Percentage points as a ratio: 1.5 points -> 0.015."""
    return value / 100


def dec(value: object) -> Decimal:
    """A parameter value from a file or a literal; floats are refused so no binary fraction sneaks in."""
    if isinstance(value, float):
        raise TypeError(f"money and ratios must be written as strings, got float {value!r}")
    return Decimal(str(value)) if not isinstance(value, Decimal) else value


def pct(ratio: Decimal) -> str:
    """0.655 -> '65.5%', for explanations. A table's few ratios are written once each: equal ratios, however
    written (0.9, 0.90), give the same text; zero, which has a signed form (-0), is written every time."""
    text = _PCT.get(ratio) if ratio else None
    if text is None:
        text = f"{(ratio * 100).normalize():f}%"
        if ratio and ratio.is_finite():
            if len(_PCT) >= 4096:
                _PCT.clear()
            _PCT[ratio] = text
    return text


_PCT: dict[Decimal, str] = {}
