"""The provider's API key: read from the environment at each use, never kept.

It only ever goes into the Authorization header, and text from the server is
scrubbed of it before it reaches an error, a log line or the history (some
servers echo the header back).
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import LLMConfigError


class ApiKey:
    """The key named by `[llm] api_key_env` (None: a server without auth), looked up in `env`."""

    def __init__(self, env_name: str | None, env: Mapping[str, str]) -> None:
        self.env_name = env_name
        self._env = env

    def headers(self) -> dict[str, str]:
        name = self.env_name
        if name is None:
            return {}
        key = self._env.get(name, "")
        if not key.strip():
            raise LLMConfigError(
                f"the environment variable {name} (named by [llm] api_key_env) is not set or empty; "
                "export the provider's API key in it, or remove api_key_env for servers without auth"
            )
        return {"authorization": f"Bearer {key.strip()}"}

    def redact(self, text: str) -> str:
        """Remove the API key from server-provided text (some servers echo it)."""
        name = self.env_name
        key = self._env.get(name, "").strip() if name else ""
        if key and len(key) >= 4:
            text = text.replace(key, "[redacted]")
        return text
