"""Accounting: token counts and per-model prices."""

from thrifty.accounting.prices import ModelPrice, PriceTable
from thrifty.accounting.tokens import count_messages, count_text, usage_of

__all__ = ["ModelPrice", "PriceTable", "count_messages", "count_text", "usage_of"]
