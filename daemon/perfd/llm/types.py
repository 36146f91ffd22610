"""The shapes of a call: the messages and options sent, the request prepared from them, the answer.

Only msgspec here: the daemon and the CLI name these types without loading
the HTTP stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import msgspec

# {"role": "user", "content": "..."} and friends: read as they are (check_messages), sent as given.
Message = Mapping[str, object]
# A JSON object as the server or the caller wrote it (a tool call, a tool's schema): passed on as it is.
JSONObject = dict[str, object]


class ChatOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to ask, for `LLMClient.complete` and `LLMClient.stream`; every field may be left out.

    `temperature`/`max_tokens`/`timeout_s` default to the config's; the other
    sampling fields are sent only when set. `extra` adds any other body field
    the server understands. All that is sent is part of the cache key;
    `use_cache=False` neither reads nor writes the cache. `plan`/`achievement`/
    `state`/`workspace` only label the call in the history.
    """

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: str | Sequence[str] | None = None
    seed: int | None = None
    tools: Sequence[Mapping[str, object]] | None = None
    tool_choice: str | Mapping[str, object] | None = None
    response_format: Mapping[str, object] | None = None
    extra: Mapping[str, object] | None = None
    use_cache: bool = True
    timeout_s: float | None = None  # per attempt; on a stream, each wait for data
    plan: str | None = None
    achievement: str | None = None
    state: str | None = None
    workspace: str | None = None  # the workspace root: `perfd stats --history` shows one workspace's calls
    on_wait: Callable[[float, str], None] | None = None
    priority: Literal["interactive", "batch"] = "interactive"


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int = 0  # every input token, those the provider's prompt cache read or wrote included
    completion_tokens: int = 0
    cache_read_tokens: int = 0  # Anthropic's cache_read_input_tokens, OpenAI's cached_tokens
    cache_write_tokens: int = 0  # Anthropic's cache_creation_input_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """One answer of the model."""

    text: str
    model: str
    finish_reason: str | None
    usage: Usage
    cached: bool = False  # served from the response cache, no request sent
    attempts: int = 0  # HTTP attempts made (0 for a cache hit)
    latency_s: float = 0.0
    cost: float = 0.0  # spent on this call (0 for a cache hit)
    tool_calls: list[JSONObject] | None = None


class PreparedRequest(msgspec.Struct, kw_only=True):
    """A prepared call: what is sent, how it is keyed and what it may cost."""

    payload: JSONObject
    body: bytes  # the payload encoded once, reused by every attempt
    key: str | None  # cache key, None when not cacheable
    tokens: int  # reserved against tpm: calibrated prompt estimate + completion_reserved
    prompt_estimate: int  # chars/4 + per-message allowance, before calibration
    completion_reserved: int  # max_tokens, or the configured estimate
    timeout_s: float
    options: ChatOptions  # as the caller gave them (the history's labels)
    attempts: int = 0  # attempts made so far (for the history)
    # time.monotonic() by which the whole call ends (total_timeout_s): each attempt's
    # timeout is clipped to what is left, and no retry starts past it.
    deadline: float | None = None


class RequestPreview(msgspec.Struct, frozen=True, kw_only=True):
    """The HTTP request a call would send (LLMClient.preview), without any secret in it: the body as sent;
    every header as sent, but a secret's value replaced by where it is read from ("[$NAME]")."""

    method: str
    url: str
    headers: dict[str, str]
    body: JSONObject
