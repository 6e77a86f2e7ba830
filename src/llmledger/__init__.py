"""llmledger: LLM token tracking and cost management.

The library face is the pure core: count tokens and price usage with no server and no
network.
"""

from llmledger.core.money import round_for_display
from llmledger.core.pricing import CostBreakdown, PriceSheet, Tier, TokenUsage, compute_cost
from llmledger.core.tokens import (
    TokenCount,
    count_messages,
    count_text,
    count_tokens,
    count_tools,
)

__version__ = "0.1.0"

__all__ = [
    "CostBreakdown",
    "PriceSheet",
    "Tier",
    "TokenCount",
    "TokenUsage",
    "__version__",
    "compute_cost",
    "count_messages",
    "count_text",
    "count_tokens",
    "count_tools",
    "round_for_display",
]
