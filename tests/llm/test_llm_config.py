"""load_llm_config: file + PERFD_LLM_* environment, validation and messages."""

from __future__ import annotations

import pytest

from perfd.llm import HOW_TO_CONFIGURE, LLMConfigError, load_llm_config

BASE = {"base_url": "https://api.example.com/v1", "model": "gpt-test"}


def test_nothing_configured_gives_none_and_a_helpful_message() -> None:
    assert load_llm_config({}, {}) is None
    assert load_llm_config({}, {"OTHER": "1"}) is None
    assert "[llm]" in HOW_TO_CONFIGURE and "PERFD_LLM_BASE_URL" in HOW_TO_CONFIGURE
    assert "api_key_env" in HOW_TO_CONFIGURE


def test_defaults_and_derived_values() -> None:
    cfg = load_llm_config(BASE, {})
    assert cfg is not None
    assert cfg.rpm is None and cfg.tpm is None and cfg.window_s == 60.0
    assert cfg.cache and not cfg.cache_temperature_above_zero
    assert cfg.concurrency == cfg.max_connections == cfg.keepalive_connections
    assert cfg.chat_url == "https://api.example.com/v1/chat/completions"
    assert load_llm_config({**BASE, "base_url": "http://h/v1/"}, {}).chat_url == "http://h/v1/chat/completions"  # type: ignore[union-attr]


def test_environment_wins_over_file_and_is_converted() -> None:
    env = {
        "PERFD_LLM_MODEL": "from-env",
        "PERFD_LLM_RPM": "60",
        "PERFD_LLM_WINDOW_S": "1.5",
        "PERFD_LLM_CACHE": "false",
        "PERFD_LLM_CACHE_TEMPERATURE_ABOVE_ZERO": "true",
        "PERFD_LLM_API_KEY_ENV": "MY_KEY",
    }
    cfg = load_llm_config({**BASE, "rpm": 10, "cache": True}, env)
    assert cfg is not None
    assert (cfg.model, cfg.rpm, cfg.window_s, cfg.cache) == ("from-env", 60, 1.5, False)
    assert cfg.cache_temperature_above_zero and cfg.api_key_env == "MY_KEY"


def test_environment_alone_configures_a_provider() -> None:
    cfg = load_llm_config({}, {"PERFD_LLM_BASE_URL": "http://localhost:11434/v1", "PERFD_LLM_MODEL": "llama3"})
    assert cfg is not None and cfg.model == "llama3"


def test_empty_environment_value_unsets_the_file_value() -> None:
    cfg = load_llm_config({**BASE, "rpm": 10}, {"PERFD_LLM_RPM": ""})
    assert cfg is not None and cfg.rpm is None


@pytest.mark.parametrize(
    ("table", "env", "needle"),
    [
        ({**BASE, "rpm": 0}, {}, "[llm] rpm = 0"),
        ({**BASE, "rpm": "60"}, {}, "[llm] rpm = '60'"),  # strings in the file are mistakes
        ({**BASE, "timeout_s": -1}, {}, "timeout_s"),
        ({**BASE, "temperature": 3}, {}, "temperature"),
        (BASE, {"PERFD_LLM_RPM": "lots"}, "PERFD_LLM_RPM"),
        (BASE, {"PERFD_LLM_CACHE": "maybe"}, "PERFD_LLM_CACHE"),
        ({"base_url": "ftp://x"} | {"model": "m"}, {}, "http(s) URL"),
        ({"base_url": "localhost:8000"} | {"model": "m"}, {}, "http(s) URL"),
        ({"base_url": "http://x/v1"}, {}, "[llm] model is required"),
        ({"model": "m"}, {}, "base_url is required"),
        ({**BASE, "rmp": 5}, {}, "did you mean 'rpm'"),
        (BASE, {"PERFD_LLM_MODLE": "x"}, "did you mean PERFD_LLM_MODEL"),
        ({**BASE, "api_key_env": "sk-abc def"}, {}, "NAME of an environment variable"),
        ({**BASE, "max_connections": 2, "max_keepalive_connections": 4}, {}, "larger than max_connections"),
    ],
)
def test_invalid_values_are_named_clearly(table: dict[str, object], env: dict[str, str], needle: str) -> None:
    with pytest.raises(LLMConfigError) as info:
        load_llm_config(table, env)
    assert needle in str(info.value)


def test_api_key_itself_is_refused_without_echoing_it() -> None:
    with pytest.raises(LLMConfigError) as info:
        load_llm_config(BASE, {"PERFD_LLM_API_KEY": "sk-very-secret"})
    assert "api_key_env" in str(info.value)
    assert "sk-very-secret" not in str(info.value)
    with pytest.raises(LLMConfigError) as info2:
        load_llm_config({**BASE, "api_key_env": "sk-very-secret-key"}, {})
    assert "sk-very-secret-key" not in str(info2.value)


async def test_workspace_file_is_read(tmp_path: object) -> None:
    import pathlib

    from perfd.llm import client_from_workspace

    root = pathlib.Path(str(tmp_path)) / "ws"
    root.mkdir()
    assert client_from_workspace(str(root), env={}) is None
    (root / "perfd.toml").write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\nrpm = 7\n')
    from perfd.settings.resolve import trust_now

    trust_now(str(root))  # a model server named by the workspace is used once the user trusts it
    client = client_from_workspace(str(root), env={"PERFD_LLM_TPM": "1000"})
    assert client is not None
    assert client.config.rpm == 7 and client.config.tpm == 1000
    assert "m" in repr(client)
    await client.aclose()
