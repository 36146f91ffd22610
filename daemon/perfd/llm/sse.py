"""Server-sent events, as far as chat-completion streams need them.

Fields per the SSE spec: `data:` lines of one event are joined with "\\n",
a blank line ends the event, `:` starts a comment (keep-alive pings),
`event:` names the event type (some servers send `event: error`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable

import msgspec


class Event(msgspec.Struct, frozen=True):
    data: str
    event: str = "message"


async def iter_events(lines: AsyncIterable[str]) -> AsyncGenerator[Event, None]:
    """Events from already-split lines (httpx's `aiter_lines()`)."""
    data: list[str] = []
    event = ""
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield Event("\n".join(data), event or "message")
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        # "id" and "retry" do not matter for a one-shot completion stream.
    if data:  # a last event without its blank line (connection closed right after)
        yield Event("\n".join(data), event or "message")
