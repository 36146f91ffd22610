"""What the common models cost, so cost and budgets work without typing prices in.

USD per million tokens, from the providers' public price pages (checked
2026-12; prices change: `[llm] price_prompt_per_1k` and friends override
them). A model is found by its name as configured, or by the longest known
name it starts with (so "gpt-4o-mini-2024-07-18" and "claude-3-5-haiku-latest"
are found); a model not here has no known price, and its cost is shown as
unknown, never as 0.
"""

from __future__ import annotations

from typing import NamedTuple


class Price(NamedTuple):
    """USD per million tokens."""

    prompt: float
    completion: float
    cache_read: float | None = None  # None: as prompt
    cache_write: float | None = None


# Longest-prefix match: list a more specific name beside the family's.
TABLE: dict[str, Price] = {
    # OpenAI
    "gpt-4o-mini": Price(0.15, 0.60, cache_read=0.075),
    "gpt-4o": Price(2.50, 10.00, cache_read=1.25),
    "gpt-4.1-nano": Price(0.10, 0.40, cache_read=0.025),
    "gpt-4.1-mini": Price(0.40, 1.60, cache_read=0.10),
    "gpt-4.1": Price(2.00, 8.00, cache_read=0.50),
    "gpt-5-nano": Price(0.05, 0.40, cache_read=0.005),
    "gpt-5-mini": Price(0.25, 2.00, cache_read=0.025),
    "gpt-5": Price(1.25, 10.00, cache_read=0.125),
    "o4-mini": Price(1.10, 4.40, cache_read=0.275),
    "o3-mini": Price(1.10, 4.40, cache_read=0.55),
    "o3": Price(2.00, 8.00, cache_read=0.50),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    # Anthropic (cache write: 5-minute cache)
    "claude-opus-4-1": Price(15.00, 75.00, cache_read=1.50, cache_write=18.75),
    "claude-opus-4": Price(15.00, 75.00, cache_read=1.50, cache_write=18.75),
    "claude-sonnet-4": Price(3.00, 15.00, cache_read=0.30, cache_write=3.75),
    "claude-3-7-sonnet": Price(3.00, 15.00, cache_read=0.30, cache_write=3.75),
    "claude-3-5-sonnet": Price(3.00, 15.00, cache_read=0.30, cache_write=3.75),
    "claude-3-5-haiku": Price(0.80, 4.00, cache_read=0.08, cache_write=1.00),
    "claude-haiku-4-5": Price(1.00, 5.00, cache_read=0.10, cache_write=1.25),
    "claude-sonnet-4-5": Price(3.00, 15.00, cache_read=0.30, cache_write=3.75),
    "claude-3-haiku": Price(0.25, 1.25, cache_read=0.03, cache_write=0.30),
    "claude-3-opus": Price(15.00, 75.00, cache_read=1.50, cache_write=18.75),
}


def price_of(model: str) -> Price | None:
    """The listed price of `model` (an exact name, or the longest listed name it starts with), or None."""
    name = model.strip().lower()
    name = name.rsplit("/", 1)[-1]  # "openai/gpt-4o" as routers name it
    found = TABLE.get(name)
    if found is not None:
        return found
    best = ""
    for known in TABLE:
        if name.startswith(known) and len(known) > len(best) and name[len(known):len(known) + 1] in ("-", "@", ""):
            best = known
    return TABLE[best] if best else None
