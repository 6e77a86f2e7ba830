"""Money is Decimal, never float. Prices are per million tokens."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

MILLION = Decimal(1_000_000)
ZERO = Decimal(0)
CURRENCY = "USD"

# Stored amounts keep 12 decimal places: one token at $0.01 per million is 1e-8 dollars.
STORAGE_PLACES = 12
_STORAGE_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Turn a user-given amount into Decimal; floats are refused so no binary error creeps in."""
    if isinstance(
        value, float
    ):  # pragma: no cover - guarded by types, kept for callers without them
        raise TypeError("money must not be a float")
    return value if isinstance(value, Decimal) else Decimal(value)


def per_million(tokens: int, price_per_million: Decimal) -> Decimal:
    """The cost of `tokens` at a price quoted per million tokens, unrounded."""
    return price_per_million * tokens / MILLION


def quantize_for_storage(amount: Decimal) -> Decimal:
    """The one rounding applied before an amount is stored (12 places, banker's rounding)."""
    return amount.quantize(_STORAGE_QUANTUM, rounding=ROUND_HALF_EVEN)


def round_for_display(amount: Decimal, places: int = 6) -> Decimal:
    """The one rounding applied for display; never used before arithmetic."""
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def as_text(amount: Decimal) -> str:
    """A decimal string without exponent notation, trailing zeros trimmed."""
    text = format(amount.normalize(), "f")
    return text if text != "-0" else "0"


# Budget counters hold integer nano-dollars: exact integer arithmetic inside SQL and Redis,
# where decimal text or floats would round. $9.2 billion fits in a signed 64-bit counter.
NANOS_PER_USD = 1_000_000_000


def to_nanos(amount: Decimal | int, *, round_up: bool = False) -> int:
    """USD to integer nano-dollars; reservations round up so they never under-reserve."""
    scaled = Decimal(amount) * NANOS_PER_USD
    return int(scaled.to_integral_value(rounding=ROUND_CEILING if round_up else ROUND_HALF_EVEN))


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD
