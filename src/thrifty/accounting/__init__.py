"""Accounting: token counts and per-model prices."""

from thrifty.accounting.prices import ModelPrice, PriceTable
from thrifty.accounting.tokens import Usage, count_messages, count_text, usage_details, usage_of

__all__ = [
    "ModelPrice",
    "PriceTable",
    "Usage",
    "count_messages",
    "count_text",
    "usage_details",
    "usage_of",
]
