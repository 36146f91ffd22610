"""Providers: Anthropic's Messages API and Azure OpenAI against stand-in servers; headers; the standard
variables; named models (-m) and fallback; the price table."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from fakeserver import FakeServer

from perfd.app.run_render import main
from perfd.llm import LLMConfigError, load_llm_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "daemon" / "perfd" / "example"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(EXAMPLE, root)
    return root


def run(ws: Path, env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    base = {"PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"], "PERFD_TRUSTED_PATHS": os.environ["PERFD_TRUSTED_PATHS"]}
    code = main(["run", *argv], str(ws), out=out, err=err, env={**base, **env})
    return code, out.getvalue(), err.getvalue()


def origin(server: FakeServer) -> str:
    return f"http://{server.host}:{server.port}"


def test_anthropic_gets_v1_messages_with_its_key_and_version_and_the_stream_prints(ws: Path,
                                                                                   server: FakeServer) -> None:
    env = {"PERFD_LLM_PROVIDER": "anthropic", "PERFD_LLM_BASE_URL": origin(server),
           "PERFD_LLM_MODEL": "claude-test", "PERFD_LLM_API_KEY_ENV": "MY_ANTHROPIC_KEY",
           "MY_ANTHROPIC_KEY": "sk-ant-secret"}
    server.script({"chunks": 4, "reply": "the answer, in four pieces", "cache_read": 3})
    code, out, err = run(ws, env, "@API-CLIENT", "--next", "--json")
    assert code == 0, err
    got = server.records[-1]
    assert got.path == "/v1/messages" and got.stream
    assert got.headers["x-api-key"] == "sk-ant-secret" and "authorization" not in got.headers
    assert got.headers["anthropic-version"] == "2023-06-01"
    assert got.body["model"] == "claude-test" and got.body["max_tokens"] >= 1 and "stream_options" not in got.body
    answer = json.loads(out.splitlines()[0])
    assert answer["text"] == "the answer, in four pieces" and answer["model"] == "claude-test"
    # usage: input + cache tokens make the prompt, output the completion
    assert answer["prompt_tokens"] == got.prompt_tokens and answer["completion_tokens"] == got.completion_tokens
    # and without --json the streamed text prints as it is
    server.script({"reply": "streamed plainly"})
    code, out, err = run(ws, env, "@API-CLIENT", "--next", "--no-cache")
    assert code == 0 and out.startswith("streamed plainly"), err


def test_azure_gets_its_deployment_api_version_and_api_key(ws: Path, server: FakeServer) -> None:
    env = {"PERFD_LLM_PROVIDER": "azure", "PERFD_LLM_BASE_URL": origin(server), "PERFD_LLM_MODEL": "gpt-4o-mini",
           "PERFD_LLM_DEPLOYMENT": "my-deploy", "PERFD_LLM_API_VERSION": "2024-10-21",
           "PERFD_LLM_API_KEY_ENV": "AZ_KEY", "AZ_KEY": "az-secret"}
    code, out, err = run(ws, env, "@API-CLIENT", "--next")
    assert code == 0, err
    got = server.records[-1]
    assert got.path == "/openai/deployments/my-deploy/chat/completions"
    assert got.query == "api-version=2024-10-21"
    assert got.headers["api-key"] == "az-secret" and "authorization" not in got.headers
    assert out.startswith("reply#")


def test_headers_are_sent_and_secret_ones_come_from_the_environment(ws: Path, server: FakeServer) -> None:
    (ws / "perfd.toml").write_text(
        f'[llm]\nbase_url = "{server.base_url}"\nmodel = "m"\n'
        '[llm.headers]\nX-Team = "perf"\n[llm.headers_env]\nX-Gateway-Token = "GATEWAY_TOKEN"\n')
    code, _, err = run(ws, {"GATEWAY_TOKEN": "gw-secret"}, "@API-CLIENT", "--next")
    assert code == 0, err
    got = server.records[-1].headers
    assert got["x-team"] == "perf" and got["x-gateway-token"] == "gw-secret"


def test_a_secret_header_may_not_be_written_in_the_file() -> None:
    with pytest.raises(LLMConfigError, match="carries a secret"):
        load_llm_config({"base_url": "http://h/v1", "model": "m", "headers": {"Authorization": "Bearer x"}}, {})
    with pytest.raises(LLMConfigError, match="NAME of an environment variable"):
        load_llm_config({"base_url": "http://h/v1", "model": "m", "headers_env": {"X-T": "sk-123 456"}}, {})


def test_headers_from_a_cloned_repo_wait_for_trust(ws: Path, server: FakeServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from perfd.settings.resolve import load

    (ws / "perfd.toml").write_text('[llm.headers_env]\nX-Leak = "HOME"\n')
    settings = load(str(ws), {"PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"]})
    assert "[llm] headers_env" in settings.waiting and "headers_env" not in settings.table("llm")


def test_with_no_model_configured_the_standard_variables_are_used_in_one_line(ws: Path,
                                                                              server: FakeServer) -> None:
    env = {"OPENAI_API_KEY": "sk-std", "OPENAI_BASE_URL": server.base_url}
    code, out, err = run(ws, env, "@API-CLIENT", "--next")
    assert code == 0, err
    assert server.records[-1].headers["authorization"] == "Bearer sk-std"
    said = [line for line in err.splitlines() if "OPENAI_API_KEY and OPENAI_BASE_URL" in line]
    assert len(said) == 1 and "no model configured" in said[0]
    # a configured model wins: the variables are the last source
    env["PERFD_LLM_BASE_URL"], env["PERFD_LLM_MODEL"] = server.base_url, "configured"
    code, _, err = run(ws, env, "@API-CLIENT", "--next", "--no-cache")
    assert code == 0 and "OPENAI_API_KEY" not in err
    assert server.records[-1].body["model"] == "configured" and "authorization" not in server.records[-1].headers


def test_a_named_model_is_picked_with_m(ws: Path, server: FakeServer) -> None:
    (ws / "perfd.toml").write_text(
        f'[llm]\nbase_url = "{server.base_url}"\nmodel = "default-model"\n'
        f'[models.fast]\nbase_url = "{server.base_url}"\nmodel = "fast-model"\n')
    code, _, err = run(ws, {}, "@API-CLIENT", "--next", "-m", "fast")
    assert code == 0, err
    assert server.records[-1].body["model"] == "fast-model"
    code, _, err = run(ws, {}, "@API-CLIENT", "--next", "--model", "nope")
    assert code == 1 and "no model named 'nope'" in err and "fast" in err


def test_a_primary_failing_with_500_falls_back_and_json_names_the_fallback(ws: Path) -> None:
    with FakeServer(max_lifetime_s=60) as down, FakeServer(max_lifetime_s=60) as up:
        down.script(*[{"status": 500}] * 10)
        (ws / "perfd.toml").write_text(
            f'[llm]\nbase_url = "{down.base_url}"\nmodel = "primary"\nmax_retries = 1\nretry_base_s = 0.01\n'
            f'fallback = ["backup"]\n'
            f'[models.backup]\nbase_url = "{up.base_url}"\nmodel = "backup-model"\n')
        code, out, err = run(ws, {}, "@API-CLIENT", "--next", "--json")
        assert code == 0, err
        assert len(down.records) == 2 and len(up.records) == 1  # its retries, then the fallback: once
        answer = json.loads(out.splitlines()[0])
        assert answer["ok"] and answer["model"] == "backup-model" and answer["text"].startswith("reply#")
        # and the plain output prints the fallback's answer
        code, out, err = run(ws, {}, "@API-CLIENT", "--next", "--no-cache")
        assert code == 0 and out.startswith("reply#"), err
        assert "1.2: answered by backup-model ([llm] fallback: primary failed before any answer)" in err


def test_fallback_stats_history_and_cache_name_the_model_that_answered(state_dir: str) -> None:
    import anyio

    from llm_helpers import make_config, user
    from perfd.llm import History, LLMClient

    with FakeServer(max_lifetime_s=60) as down, FakeServer(max_lifetime_s=60) as up:
        down.script(*[{"status": 500}] * 10)

        async def go() -> tuple[dict[str, int], list[tuple[str, str]], bool, str]:
            backup = LLMClient(make_config(up.base_url, model="backup-model"))
            async with LLMClient(make_config(down.base_url, model="primary", max_retries=0),
                                 fallbacks=[backup]) as llm:
                async with llm.stream(user("q")) as s:
                    text = "".join([d async for d in s])
                assert s.answered_by == "backup-model" and s.completion is not None
                again = await llm.complete(user("q"))  # the primary fails again; the backup's cache answers
                await llm.flush()
                history = llm.history
                assert history is not None
                rows = [(r.model, r.outcome) for r in reversed(history.calls(limit=10))]
                return llm.stats().served_by_fallback, rows, again.cached, text

        served, rows, cached, text = anyio.run(go)
    assert text.startswith("reply#")
    assert served == {"backup-model": 2}
    # (two writers, one file: the order of their rows is not fixed)
    assert sorted(rows) == sorted([("primary", "http_5xx"), ("backup-model", "ok"), ("primary", "http_5xx"),
                                   ("backup-model", "ok")])
    assert cached and len(up.records) == 1  # cached under the model that answered; paid once


def test_the_price_table_knows_common_models_and_settings_override_it() -> None:
    cfg = load_llm_config({"base_url": "http://h/v1", "model": "gpt-4o-mini-2024-07-18"}, {})
    assert cfg is not None and cfg.priced
    assert cfg.cost(1_000_000, 1_000_000) == pytest.approx(0.15 + 0.60)
    own = load_llm_config({"base_url": "http://h/v1", "model": "gpt-4o-mini", "price_prompt_per_1k": 1.0,
                           "price_completion_per_1k": 2.0}, {})
    assert own is not None and own.cost(1000, 1000) == pytest.approx(3.0)
    unknown = load_llm_config({"base_url": "http://h/v1", "model": "my-local-llama"}, {})
    assert unknown is not None and not unknown.priced
    with pytest.raises(LLMConfigError, match="none is known for 'my-local-llama'"):
        load_llm_config({"base_url": "http://h/v1", "model": "my-local-llama", "budget_usd_per_day": 1.0}, {})


def test_plain_calls_of_each_protocol(server: FakeServer, state_dir: str) -> None:
    import anyio

    from llm_helpers import make_config, user
    from perfd.llm import LLMClient

    async def go() -> list[tuple[str, int, int, str]]:
        out = []
        for cfg in (make_config(origin(server), provider="anthropic", model="claude-3-5-haiku-latest"),
                    make_config(origin(server), provider="azure", model="gpt-4o-mini", deployment="d")):
            async with LLMClient(cfg) as llm:
                got = await llm.complete([{"role": "system", "content": "be brief"}, *user("q")])
                out.append((got.text, got.usage.prompt_tokens, got.usage.completion_tokens, str(got.cost > 0)))
        return out

    server.script({"reply": "from anthropic"}, {"reply": "from azure"})
    (a_text, a_prompt, _, a_priced), (z_text, _, _, z_priced) = anyio.run(go)
    first, second = server.records[-2], server.records[-1]
    assert first.path == "/v1/messages" and first.body["system"] == "be brief"
    assert [m["role"] for m in first.body["messages"]] == ["user"] and not first.stream
    assert a_text == "from anthropic" and a_prompt == first.prompt_tokens and a_priced == "True"
    assert second.path == "/openai/deployments/d/chat/completions" and z_text == "from azure" and z_priced == "True"


def test_m_and_fallback_through_the_daemon(server: FakeServer) -> None:
    import tempfile

    from test_run_daemon import DaemonWs

    base = tempfile.mkdtemp(prefix="pm", dir="/tmp")  # short: a socket path must fit in 108 bytes
    w = DaemonWs(base, server)
    try:
        with FakeServer(max_lifetime_s=60) as down:
            down.script(*[{"status": 500}] * 10)
            with open(os.path.join(w.root, "perfd.toml"), "w") as f:
                f.write(f'[llm]\nbase_url = "{down.base_url}"\nmodel = "primary"\nmax_retries = 0\n'
                        f'fallback = ["backup"]\n'
                        f'[models.backup]\nbase_url = "{server.base_url}"\nmodel = "backup-model"\n')
            w.trust()
            w.start()
            code, out, err = w.run("run", "@DOCS-SITE", "2.1", "--json")
            assert code == 0, err
            assert json.loads(out.splitlines()[0])["model"] == "backup-model" and len(down.records) == 1
            code, out, err = w.run("run", "@DOCS-SITE", "2.2", "-m", "backup")
            assert code == 0 and out.startswith("reply#"), err
            assert server.records[-1].body["model"] == "backup-model" and len(down.records) == 1
            code, text, _ = w.run("stats")
            assert "answered by [llm] fallback: backup-model 1" in text
    finally:
        w.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_anthropic_usage_counts_the_prompt_caches_tokens_at_their_prices() -> None:
    from perfd.llm.parsing import cost_of, usage_of
    from perfd.llm.types import ChatOptions, PreparedRequest

    request = PreparedRequest(payload={}, body=b"", key=None, tokens=10, prompt_estimate=5, completion_reserved=5,
                              timeout_s=1.0, options=ChatOptions())
    usage = usage_of({"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 1000,
                      "cache_creation_input_tokens": 200}, request, "")
    assert (usage.prompt_tokens, usage.completion_tokens) == (1300, 50)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (1000, 200)
    cfg = load_llm_config({"base_url": "http://h", "model": "claude-sonnet-4-5", "provider": "anthropic"}, {})
    assert cfg is not None
    # $3 / M input, $0.30 / M cache read, $3.75 / M cache write, $15 / M output
    assert cost_of(cfg, usage) == pytest.approx((100 * 3 + 1000 * 0.3 + 200 * 3.75 + 50 * 15) / 1e6)
    openai = usage_of({"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 60}},
                      request, "")
    assert openai.prompt_tokens == 100 and openai.cache_read_tokens == 60


def test_a_named_model_from_a_cloned_repo_waits_for_trust_and_config_shows_it(ws: Path) -> None:
    from perfd.app.settings_commands import render_config
    from perfd.settings.resolve import load

    (ws / "perfd.toml").write_text('[models.evil]\nbase_url = "http://attacker.example/v1"\nmodel = "m"\n'
                                   '[models.local]\ntemperature = 0.5\n')
    env = {"PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"]}
    settings = load(str(ws), env)
    assert settings.waiting == ("[models] evil",)
    assert "evil" not in settings.table("models") and settings.table("models")["local"] == {"temperature": 0.5}
    shown = render_config(settings, with_defaults=False, as_json=False)
    assert "[models] evil" in shown and "waits for `perfd trust`" in shown
    code, _, err = run(ws, {"PERFD_TRUSTED_PATHS": ""}, "@API-CLIENT", "--next", "-m", "evil")
    assert code == 1 and "waits for `perfd trust`" in err


def test_when_the_fallback_fails_too_the_error_says_what_each_model_said(ws: Path) -> None:
    with FakeServer(max_lifetime_s=60) as down, FakeServer(max_lifetime_s=60) as also_down:
        down.script(*[{"status": 500}] * 5)
        also_down.script(*[{"status": 503}] * 5)
        (ws / "perfd.toml").write_text(
            f'[llm]\nbase_url = "{down.base_url}"\nmodel = "primary"\nmax_retries = 0\nfallback = ["backup"]\n'
            f'[models.backup]\nbase_url = "{also_down.base_url}"\nmodel = "backup-model"\nmax_retries = 0\n')
        code, out, err = run(ws, {}, "@API-CLIENT", "--next")
        assert code == 3 and out == ""
        failed = next(line for line in err.splitlines() if line.startswith("perfd: the model call failed"))
        assert "HTTP 503" in failed and "before it, primary:" in failed and "HTTP 500" in failed
        assert len(down.records) == 1 and len(also_down.records) == 1
