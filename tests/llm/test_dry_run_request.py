"""`run --dry-run` shows the HTTP request the provider would get (URL, headers, body) without any secret,
and it is the request a real run then sends: for OpenAI-compatible servers, Anthropic and Azure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fakeserver import FakeServer
from test_providers import EXAMPLE, origin, run

from perfd.llm import LLMClient, LLMConfig

SECRETS = {"MY_KEY": "sk-very-secret-1234", "GATEWAY_TOKEN": "gw-very-secret-5678"}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "azure"])
def test_the_dry_runs_request_is_what_a_run_sends_and_names_its_secrets(tmp_path: Path, server: FakeServer,
                                                                        provider: str) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws)
    base = server.base_url if provider == "openai" else origin(server)
    (ws / "perfd.toml").write_text(
        f'[llm]\nprovider = "{provider}"\nbase_url = "{base}"\nmodel = "gpt-4o-mini"\napi_key_env = "MY_KEY"\n'
        'temperature = 0.3\nmax_tokens = 700\n'
        '[llm.headers]\nX-Team = "perf"\n[llm.headers_env]\nX-Gateway-Token = "GATEWAY_TOKEN"\n')
    code, out, err = run(ws, SECRETS, "@API-CLIENT", "1.2", "--dry-run", "--json")
    assert code == 0 and server.records == [], err
    shown = json.loads(out)["request"]
    for secret in SECRETS.values():
        assert secret not in out and secret not in err
    code, text_out, text_err = run(ws, SECRETS, "@API-CLIENT", "1.2", "--dry-run")
    assert code == 0 and server.records == []
    for secret in SECRETS.values():
        assert secret not in text_out and secret not in text_err
    assert f"perfd: POST {shown['url']}\n" in text_err and "perfd:   x-team: perf\n" in text_err
    assert "perfd:   x-gateway-token: [$GATEWAY_TOKEN]\n" in text_err and '"temperature":0.3' in text_err
    assert text_out == shown["body"]["messages"][-1]["content"]  # the prompt on stdout, elided in the body line

    code, _out, err = run(ws, SECRETS, "@API-CLIENT", "1.2")
    assert code == 0, err
    got = server.records[-1]
    assert got.body == shown["body"]  # the body exactly: temperature, max_tokens, stream, the provider's shape
    assert shown["url"].endswith(got.path + (f"?{got.query}" if got.query else ""))
    key_header = {"openai": "authorization", "anthropic": "x-api-key", "azure": "api-key"}[provider]
    assert shown["headers"][key_header] == ("Bearer " if provider == "openai" else "") + "[$MY_KEY]"
    assert got.headers[key_header].endswith(SECRETS["MY_KEY"])
    assert shown["headers"]["x-gateway-token"] == "[$GATEWAY_TOKEN]"
    assert got.headers["x-gateway-token"] == SECRETS["GATEWAY_TOKEN"]
    for name, value in shown["headers"].items():  # every other header as it was sent
        if name not in (key_header, "x-gateway-token"):
            assert got.headers.get(name) == value, name
    assert set(got.headers) <= set(shown["headers"]) | {"host"}
    assert got.headers["content-type"] == "application/json"  # JSON bytes, said so (httpx would not)
    if provider == "anthropic":
        assert shown["body"]["max_tokens"] == 700 and "stream_options" not in shown["body"]
    else:
        assert shown["body"]["stream"] is True and shown["body"]["temperature"] == 0.3


def test_a_preview_reads_no_secret_and_hides_one_in_the_url() -> None:
    cfg = LLMConfig(base_url="https://user:pw-secret@h.example/v1", model="m", api_key_env="UNSET_KEY",
                    history=False, cache=False)
    preview = LLMClient(cfg, env={}).preview([{"role": "user", "content": "hi"}])  # the key's variable is unset
    assert preview.headers["authorization"] == "Bearer [$UNSET_KEY]"
    assert "pw-secret" not in preview.url and preview.url.endswith("@h.example/v1/chat/completions")
    assert preview.body == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.0,
                            "stream": True,
                            "stream_options": {"include_usage": True}}
