"""Configuration: precedence of file, environment and overrides, and clear errors naming the
field for malformed input (bad TOML, unknown field, wrong type, out-of-range value)."""

from __future__ import annotations

import pytest

from rar_tasks.config import GPT4_1106_PRICES, MIXTRAL_8X7B_PRICES, load_settings
from rar_tasks.errors import ConfigError


def test_defaults_price_local_models_like_gpt4_and_mixtral():
    settings = load_settings(environ={})

    assert settings.strong.input_cost_per_token == GPT4_1106_PRICES[0] == 10e-6
    assert settings.strong.output_cost_per_token == 30e-6
    assert settings.weak.input_cost_per_token == MIXTRAL_8X7B_PRICES[0] == 0.6e-6
    assert settings.judge == "agreement"
    assert settings.weak.model.startswith("gguf/") and settings.strong.model.startswith("gguf/")


def test_file_then_environment_then_overrides(tmp_path):
    path = tmp_path / "rar.toml"
    path.write_text(
        '[strong]\nmodel = "openai/gpt-4o"\ninput_cost_per_token = 2.5e-6\n'
        "[router]\nk = 7\nmin_agreeing = 3\n"
    )
    env = {"RAR_ROUTER__K": "9", "RAR_GUIDE__ENABLED": "false", "HOME": "/nowhere"}

    settings = load_settings(path, overrides={"router": {"min_agreeing": 4}}, environ=env)

    assert settings.strong.model == "openai/gpt-4o"
    assert settings.strong.input_cost_per_token == 2.5e-6
    assert settings.strong.output_cost_per_token == 30e-6  # untouched key keeps its default
    assert settings.router.k == 9  # environment beats the file
    assert settings.router.min_agreeing == 4  # overrides beat both
    assert settings.guide.enabled is False


def test_rar_config_variable_names_the_file(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text('judge = "ground_truth"\n')

    assert load_settings(environ={"RAR_CONFIG": str(path)}).judge == "ground_truth"


@pytest.mark.parametrize(
    "toml, field",
    [
        ("[router]\nk = 'five'\n", "router.k"),
        ("[router]\nk = 2.5\n", "router.k"),
        ("[router]\nmin_similarity = true\n", "router.min_similarity"),
        ("[weak]\nmodel = 5\n", "weak.model"),
        ("[guide]\nenabled = 'maybe'\n", "guide.enabled"),
        ("router = 3\n", "router"),
    ],
)
def test_wrong_type_names_the_field(tmp_path, toml, field):
    path = tmp_path / "rar.toml"
    path.write_text(toml)

    with pytest.raises(ConfigError, match=f"'{field}'"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    "toml, field",
    [
        ("[routr]\nk = 3\n", "routr"),
        ("[router]\nkk = 3\n", "router.kk"),
        ("colour = 1\n", "colour"),
    ],
)
def test_unknown_field_is_named(tmp_path, toml, field):
    path = tmp_path / "rar.toml"
    path.write_text(toml)

    with pytest.raises(ConfigError, match=f"unknown config field '{field}'"):
        load_settings(path, environ={})


def test_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[router\nk = 3\n")

    with pytest.raises(ConfigError, match="broken.toml is not valid TOML"):
        load_settings(path, environ={})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="missing.toml does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_environment_value_of_wrong_type_names_the_field():
    with pytest.raises(ConfigError, match=r"'router\.k' must be int, got 'abc'"):
        load_settings(environ={"RAR_ROUTER__K": "abc"})


def test_unknown_environment_field_is_named():
    with pytest.raises(ConfigError, match="'router.kay'"):
        load_settings(environ={"RAR_ROUTER__KAY": "3"})


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"router": {"k": 0}}, "router.k"),
        ({"router": {"k": 3, "min_agreeing": 4}}, "router.min_agreeing"),
        ({"router": {"min_similarity": 1.5}}, "router.min_similarity"),
        ({"router": {"min_agree_share": -0.1}}, "router.min_agree_share"),
        ({"router": {"vote": "majority"}}, "router.vote"),
        ({"router": {"prior_weight": -1.0}}, "router.prior_weight"),
        ({"router": {"uncertainty_z": -0.5}}, "router.uncertainty_z"),
        ({"router": {"min_weak_score": 1.5}}, "router.min_weak_score"),
        ({"weak": {"model": "no-provider"}}, "weak.model"),
        ({"strong": {"output_cost_per_token": -1.0}}, "strong.output_cost_per_token"),
        ({"strong": {"max_tokens": 0}}, "strong.max_tokens"),
        ({"judge": "vibes"}, "judge"),
        ({"max_request_chars": 0}, "max_request_chars"),
        ({"embedder": {"model": "minilm"}}, "embedder.model"),
        ({"local": {"n_threads": 0}}, "local.n_threads"),
    ],
)
def test_out_of_range_value_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        load_settings(overrides=overrides, environ={})


def test_a_failed_load_leaves_no_trace_in_the_next(tmp_path):
    path = tmp_path / "rar.toml"
    path.write_text("[router]\nk = 8\nmin_agreeing = 'x'\n")
    with pytest.raises(ConfigError):
        load_settings(path, environ={})

    assert load_settings(environ={}).router.k == 50


def test_example_config_of_the_repository_loads():
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "rar.example.toml"

    settings = load_settings(example, environ={})

    assert settings.router.min_similarity == load_settings(environ={}).router.min_similarity
    assert settings.strong.output_cost_per_token == 30e-6


def test_config_that_is_a_folder_or_not_utf8_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path, environ={})

    binary = tmp_path / "rar.toml"
    binary.write_bytes(b"\xff\xfe[router]")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(binary, environ={})


def test_top_level_fields_come_from_the_environment():
    settings = load_settings(environ={"RAR_JUDGE": "llm", "RAR_MAX_REQUEST_CHARS": "500"})
    assert (settings.judge, settings.max_request_chars) == ("llm", 500)
    with pytest.raises(ConfigError, match="'judge' must be one of"):
        load_settings(environ={"RAR_JUDGE": "vibes"})
