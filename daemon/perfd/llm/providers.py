"""The wire protocols perfd speaks: OpenAI chat completions (also Azure OpenAI) and Anthropic's Messages API.

Everything above this module (limits, retries, breaker, cache, history) is the
same for every provider; what differs is the request body, the auth header and
how an answer or a stream event reads. `wire_for(config)` picks the one; each
reads its server's answer into the same shapes (text, finish reason, usage).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from perfd.settings.schema import ANTHROPIC_MAX_TOKENS, ANTHROPIC_VERSION

from .config import LLMConfig
from .errors import LLMRequestError
from .types import JSONObject

# Body fields the caller's `extra` may not set: perfd controls them.
RESERVED = ("model", "messages", "stream", "stream_options", "system")


class Answer:
    """A plain (not streamed) answer as a provider's body gives it."""

    __slots__ = ("text", "finish_reason", "model", "usage", "tool_calls")

    def __init__(self, text: str, finish_reason: str | None, model: str, usage: object,
                 tool_calls: list[JSONObject] | None) -> None:
        self.text = text
        self.finish_reason = finish_reason
        self.model = model
        self.usage = usage  # as sent: parsing.usage_of reads either shape
        self.tool_calls = tool_calls


class Wire(Protocol):
    name: str
    key_header: str  # the header the API key goes in
    key_prefix: str  # before the key in that header ("Bearer ")

    def fixed_headers(self, config: LLMConfig) -> dict[str, str]: ...

    def payload(self, config: LLMConfig, messages: list[JSONObject], params: JSONObject, *,
                stream: bool) -> JSONObject: ...


class OpenAIWire:
    """OpenAI chat completions, as every compatible server speaks it (and Azure OpenAI)."""

    name = "openai"
    key_header = "authorization"
    key_prefix = "Bearer "

    def fixed_headers(self, config: LLMConfig) -> dict[str, str]:
        return {}

    def payload(self, config: LLMConfig, messages: list[JSONObject], params: JSONObject, *,
                stream: bool) -> JSONObject:
        payload: JSONObject = {"model": config.model, "messages": messages, **params}
        if stream:
            payload["stream"] = True
            if config.stream_usage:
                payload["stream_options"] = {"include_usage": True}
        return payload


class AzureWire(OpenAIWire):
    """Azure OpenAI: the same body; the deployment and api-version are in the URL, the key in `api-key`."""

    name = "azure"
    key_header = "api-key"
    key_prefix = ""


class AnthropicWire:
    """Anthropic's Messages API: system text apart, max_tokens required, `x-api-key`, `anthropic-version`."""

    name = "anthropic"
    key_header = "x-api-key"
    key_prefix = ""

    def fixed_headers(self, config: LLMConfig) -> dict[str, str]:
        return {"anthropic-version": config.api_version or ANTHROPIC_VERSION}

    def payload(self, config: LLMConfig, messages: list[JSONObject], params: JSONObject, *,
                stream: bool) -> JSONObject:
        system: list[str] = []
        turns: list[JSONObject] = []
        for m in messages:
            if m.get("role") == "system":
                content = m.get("content")
                system.append(content if isinstance(content, str) else str(content))
            else:
                turns.append(m)
        if not turns:
            raise LLMRequestError("the Anthropic Messages API needs at least one user message")
        body: JSONObject = {"model": config.model, "messages": turns,
                            "max_tokens": params.get("max_tokens") or ANTHROPIC_MAX_TOKENS}
        if system:
            body["system"] = "\n\n".join(system)
        for name, value in params.items():
            if name == "max_tokens":
                continue
            if name == "stop":
                body["stop_sequences"] = [value] if isinstance(value, str) else value
            elif name in ("seed", "response_format"):
                continue  # not in the Messages API: left out rather than refused by the server
            else:
                body[name] = value
        if stream:
            body["stream"] = True
        return body


_WIRES: dict[str, Wire] = {"openai": OpenAIWire(), "azure": AzureWire(), "anthropic": AnthropicWire()}


def wire_for(config: LLMConfig) -> Wire:
    return _WIRES[config.provider]


def text_of(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content)



def read_answer(data: Mapping[str, object], config: LLMConfig) -> Answer:
    """A plain answer body of either protocol (KeyError/TypeError/IndexError when it is none)."""
    if config.provider == "anthropic":
        blocks = data["content"]
        assert isinstance(blocks, list)
        text = "".join(str(b.get("text", "")) for b in blocks if isinstance(b, Mapping) and b.get("type") == "text")
        reason = data.get("stop_reason")
        return Answer(text, str(reason) if reason is not None else None, str(data.get("model") or config.model),
                      data.get("usage"), None)
    choices = data["choices"]
    assert isinstance(choices, list)
    choice = choices[0]
    message = choice.get("message") or {}
    tools = message.get("tool_calls") or None
    reason = choice.get("finish_reason")
    return Answer(text_of(message.get("content")), str(reason) if reason is not None else None,
                  str(data.get("model") or config.model), data.get("usage"), tools)
