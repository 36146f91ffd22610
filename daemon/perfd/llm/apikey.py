"""The provider's API key (and any header whose value is a secret): read from the environment at each use, never kept.

It only ever goes into its header (`authorization: Bearer`, `x-api-key` or
`api-key`, as the provider wants it), and text from the server is scrubbed of
it before it reaches an error, a log line or the history (some servers echo
the header back). `[llm] headers_env` names further variables, each sent as
one header, and scrubbed the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import LLMConfigError


class ApiKey:
    """The key named by `[llm] api_key_env` (None: a server without auth), looked up in `env`."""

    def __init__(self, env_name: str | None, env: Mapping[str, str], *, header: str = "authorization",
                 prefix: str = "Bearer ", secret_headers: Mapping[str, str] | None = None) -> None:
        self.env_name = env_name
        self._env = env
        self._header = header
        self._prefix = prefix
        self._secret_headers = dict(secret_headers or {})  # header -> NAME of its variable

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for header, variable in self._secret_headers.items():
            value = self._env.get(variable, "").strip()
            if not value:
                raise LLMConfigError(f"the environment variable {variable} (named by [llm] headers_env for the "
                                     f"{header} header) is not set or empty")
            out[header] = value
        name = self.env_name
        if name is None:
            return out
        key = self._env.get(name, "")
        if not key.strip():
            raise LLMConfigError(
                f"the environment variable {name} (named by [llm] api_key_env) is not set or empty; "
                "export the provider's API key in it, or remove api_key_env for servers without auth"
            )
        out[self._header] = f"{self._prefix}{key.strip()}"
        return out

    def masked_headers(self) -> dict[str, str]:
        """The headers headers() sends, each value replaced by the variable it is read from: the
        variables are never read, so a preview shows no secret and needs none set."""
        out = {header: f"[${variable}]" for header, variable in self._secret_headers.items()}
        if self.env_name is not None:
            out[self._header] = f"{self._prefix}[${self.env_name}]"
        return out

    def redact(self, text: str) -> str:
        """Remove the API key (and secret header values) from server-provided text (some servers echo them)."""
        names = [self.env_name, *self._secret_headers.values()]
        for name in names:
            key = self._env.get(name, "").strip() if name else ""
            if key and len(key) >= 4:
                text = text.replace(key, "[redacted]")
        return text
