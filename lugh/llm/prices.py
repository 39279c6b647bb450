"""What model calls cost, estimated from a price table (USD per million tokens).

An estimate for budgets, not a bill: prices are the published list prices as Lugh last knew
them, matched by model family; a model not in the table is priced as the most expensive family,
so a budget is never exhausted later than it should be. Cache writes are billed at 1.25 × the
input price (5-minute cache), cache reads at 0.1 ×.
"""

from __future__ import annotations

from dataclasses import dataclass

from lugh.llm.chat import Usage

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    input: float
    output: float

    @property
    def cache_write(self) -> float:
        return self.input * 1.25

    @property
    def cache_read(self) -> float:
        return self.input * 0.1


# First match wins: a model id containing the key is priced at its value.
PRICES: tuple[tuple[str, Price], ...] = (
    ("claude-opus-4-0", Price(15.0, 75.0)),
    ("claude-opus-4-1", Price(15.0, 75.0)),
    ("claude-opus-4-2025", Price(15.0, 75.0)),
    ("claude-4-opus", Price(15.0, 75.0)),
    ("mythos", Price(25.0, 125.0)),
    ("opus", Price(5.0, 25.0)),
    ("sonnet", Price(3.0, 15.0)),
    ("haiku", Price(1.0, 5.0)),
)
UNKNOWN = max((p for _, p in PRICES), key=lambda p: p.input + p.output)


def price_of(model: str) -> Price:
    name = model.lower()
    return next((price for key, price in PRICES if key in name), UNKNOWN)


def estimate_cost(model: str, usage: Usage) -> float:
    """The estimated cost in USD of `usage` on `model`."""
    price = price_of(model)
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    ) / PER_MILLION
