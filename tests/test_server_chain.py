"""The request chain: stages composed outermost first, each given only its collaborators."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request

from thrifty.server.chain import compose
from thrifty.server.context import Handler, RequestContext, Stage


class Note(Stage):
    """A stage that notes its name on the way in and out (as a PII guard or a ledger would)."""

    def __init__(self, next: Handler, *, name: str, seen: list[str]) -> None:
        super().__init__(next)
        self.name = name
        self.seen = seen

    async def __call__(self, ctx: RequestContext) -> Any:
        self.seen.append(f"{self.name} in")
        answer = await self.next(ctx)
        self.seen.append(f"{self.name} out")
        return answer


def test_stages_run_outermost_first_and_a_new_stage_is_one_line() -> None:
    seen: list[str] = []

    async def innermost(ctx: RequestContext) -> str:
        seen.append("upstream")
        return f"answer for {ctx.model}"

    chain = compose(
        [
            (Note, {"name": "auth", "seen": seen}),
            (Note, {"name": "guard", "seen": seen}),  # the one line a new stage takes
            (Note, {"name": "cache", "seen": seen}),
        ],
        innermost,
    )
    ctx = RequestContext(Request({"type": "http", "headers": []}), "chat", model="m")
    assert anyio.run(chain, ctx) == "answer for m"
    assert seen == ["auth in", "guard in", "cache in", "upstream", "cache out", "guard out",
                    "auth out"]  # fmt: skip
