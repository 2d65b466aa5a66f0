"""Synthetic teacher pairs for the distillation tests: a few intents, reworded requests."""

from __future__ import annotations

import random

from thrifty.distill import Pair

INTENTS: dict[str, tuple[list[str], list[str]]] = {
    "card_arrival": (
        [
            "where is my card",
            "my card has not arrived",
            "card still not delivered",
            "when will the new card come",
        ],
        ["yet", "please", "still", "ordered"],
    ),
    "refund": (
        [
            "I want my money back",
            "refund the purchase",
            "how do I get a refund",
            "return the item for a refund",
        ],
        ["order", "please", "shop", "now"],
    ),
    "pin_change": (
        ["change my pin", "reset the pin code", "new pin number", "forgot my pin"],
        ["card", "please", "app", "atm"],
    ),
    "top_up": (
        ["top up my account", "add money with top up", "top-up failed", "how to top up"],
        ["card", "transfer", "please", "today"],
    ),
}


def make_pairs(n: int, seed: int) -> list[Pair]:
    """``n`` reworded requests with their intent as the teacher's answer."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        intent = list(INTENTS)[i % len(INTENTS)]
        phrases, fillers = INTENTS[intent]
        words = [rng.choice(phrases), *rng.sample(fillers, 2)]
        pairs.append(Pair(" ".join(words) + rng.choice(["", "?", " thanks"]), intent))
    rng.shuffle(pairs)
    return pairs
