"""Settings: defaults, then the TOML file, then SEGSTREAM_* environment variables."""

from __future__ import annotations

import pytest

from app.settings import load_settings


def test_defaults():
    s = load_settings(env={})
    assert (s.broker, s.web_port, s.partitions, s.learn) == ("kafka://127.0.0.1:9092", 6066, 4, True)
    assert (s.engine.learner.algorithm, s.engine.learner.n_clusters) == ("Mixture", "auto")


def test_file_then_env(tmp_path):
    config = tmp_path / "segstream.toml"
    config.write_text(
        'partitions = 8\nweb_port = 7000\n[segmenter]\nmin_events = 5\nfeatures = ["conversion", "monetary"]\n'
        "[features]\nwindows = { 10m = [600, 60] }\n[learner]\nn_clusters = 3\n"
    )
    s = load_settings(env={"SEGSTREAM_CONFIG": str(config), "SEGSTREAM_WEB_PORT": "7100"})
    assert (s.partitions, s.web_port) == (8, 7100)
    assert s.engine.segmenter.min_events == 5 and s.engine.segmenter.features == ("conversion", "monetary")
    assert s.engine.features.windows == {"10m": (600, 60)}
    assert s.engine.learner.n_clusters == 3


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("brokr = 'x'\n", {}, "unknown settings \\['brokr'\\]"),
        ("[segmenter]\nmin_event = 3\n", {}, "unknown settings \\['min_event'\\] in \\[segmenter\\]"),
        ("[segmenter]\nfeatures = ['nope']\n", {}, "unknown segmenter features"),
        ("", {"SEGSTREAM_PARTITIONS": "many"}, "setting partitions must be int"),
        ("", {"SEGSTREAM_LEARN": "maybe"}, "setting learn must be true or false"),
        ("[features]\nallowed_lateness_s = 4000\n", {}, "allowed_lateness_s must be shorter"),
        ("not toml [", {}, "cannot read config file"),
        ("", {"SEGSTREAM_MIN_EVENT_TIME": "last tuesday"}, "setting min_event_time: 'last tuesday' is not a timestamp"),
        ("min_event_time = 2020-01-01\n", {}, "setting min_event_time: .* is not a timestamp; want an RFC 3339"),
        ("min_event_time = '2020-01-01T00:00:00'\n", {}, "setting min_event_time: .* has no UTC offset"),
        ("min_event_time = -1\n", {}, "setting min_event_time: '-1' is not on or after 1970-01-01"),
        ("min_event_time = 1577836800000\n", {}, "setting min_event_time: .* epoch milliseconds\\? give epoch seconds"),
        # A mistyped variable would be ignored, and the default broker used: on a shared host, someone else's.
        ("", {"SEGSTREAM_BROKR": "kafka://10.0.0.9:9092"}, "unknown setting SEGSTREAM_BROKR in the environment; "
                                                            "did you mean SEGSTREAM_BROKER\\?"),
        ("", {"SEGSTREAM_NOPE": "1"}, "unknown setting SEGSTREAM_NOPE in the environment$"),
        ("", {"SEGSTREAM_PARTITIONS": "0"}, "setting partitions must be at least 1, got 0"),
        ("", {"SEGSTREAM_BATCH_SIZE": "-5"}, "setting batch_size must be at least 1, got -5"),
        ("", {"SEGSTREAM_REDIS_TIMEOUT_S": "-1"}, "setting redis_timeout_s must be greater than 0"),
        ("", {"SEGSTREAM_REDIS_TIMEOUT_S": "nan"}, "setting redis_timeout_s must be greater than 0"),
        ("", {"SEGSTREAM_WEB_PORT": "99999"}, "setting web_port must be a TCP port, 1 to 65535, got 99999"),
        ("api_port = 0\n", {}, "setting api_port must be a TCP port"),
        ("", {"SEGSTREAM_MAX_MESSAGE_BYTES": "5000000"}, "setting max_message_bytes must be 1 to 1048576"),
        ("", {"SEGSTREAM_WEBHOOK_MAX_ATTEMPTS": "0"}, "setting webhook_max_attempts must be at least 1"),
        ("", {"SEGSTREAM_IDLE_AFTER_S": "0"}, "setting idle_after_s must be greater than 0"),
        ("", {"SEGSTREAM_START_TIMEOUT_S": "0"}, "setting start_timeout_s must be greater than 0"),
        ("", {"SEGSTREAM_LOG_LEVEL": "verbose"}, "setting log_level must be one of debug, info"),
        ("", {"SEGSTREAM_STORE": "redis://x"}, "setting store must be memory:// or rocksdb://"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(tmp_path, text, env, message):
    config = tmp_path / "segstream.toml"
    config.write_text(text)
    with pytest.raises(SystemExit, match=message):
        load_settings(env={"SEGSTREAM_CONFIG": str(config), **env})


def test_rules_from_the_config_file(tmp_path):
    path = tmp_path / "segstream.toml"
    path.write_text(
        '[rules]\ndefault_timezone = "Europe/Paris"\n'
        '[rules.segments]\nweekend_mobile = "weekday in (\'sat\', \'sun\') and device == \'mobile\'"\n'
        '[rules.triggers]\ncart_abandon = "45m"\nhot_lead_views = 8\n'
        '[[rules.triggers.custom]]\nname = "stalled"\nwhen = "event == \'checkout\'"\nunless = "purchase"\nwithin = "10m"\n'
    )
    settings = load_settings(env={"SEGSTREAM_CONFIG": str(path)})
    rules = settings.engine.rules
    assert rules.default_timezone == "Europe/Paris" and "weekend_mobile" in rules.segments and "champions" in rules.segments
    assert rules.triggers.cart_abandon_s == 2700 and rules.triggers.hot_lead_views == 8
    assert rules.triggers.custom[0].within_s == 600
    assert ("product_view", 300) in settings.engine.features.counted  # hot_lead's window joins the state


def test_a_bad_rule_stops_start_up_with_its_position(tmp_path):
    path = tmp_path / "segstream.toml"
    path.write_text('[rules.segments]\nvip = "monetary >> 500"\n')
    with pytest.raises(SystemExit, match="rule 'vip', position 10: expected a value"):
        load_settings(env={"SEGSTREAM_CONFIG": str(path)})


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("min_event_time = 2020-01-01T00:00:00Z\n", 1_577_836_800.0),  # a TOML offset date-time
        ("min_event_time = '2020-01-01T01:00:00+01:00'\n", 1_577_836_800.0),
        ("min_event_time = 1577836800\n", 1_577_836_800.0),
        ("min_event_time = 863602200.5\n", 863_602_200.5),
        ("", None),
    ],
)
def test_min_event_time_from_the_config_file(tmp_path, toml, expected):
    config = tmp_path / "segstream.toml"
    config.write_text(toml)
    assert load_settings(env={"SEGSTREAM_CONFIG": str(config)}).min_event_time == expected


def test_min_event_time_from_the_environment_overrides_the_file(tmp_path):
    config = tmp_path / "segstream.toml"
    config.write_text("min_event_time = 2020-01-01T00:00:00Z\n")
    env = {"SEGSTREAM_CONFIG": str(config)}
    assert load_settings(env={**env, "SEGSTREAM_MIN_EVENT_TIME": "1997-01-01T00:00:00Z"}).min_event_time == 852_076_800
    assert load_settings(env={**env, "SEGSTREAM_MIN_EVENT_TIME": "852076800"}).min_event_time == 852_076_800.0
    assert load_settings(env={**env, "SEGSTREAM_MIN_EVENT_TIME": ""}).min_event_time is None  # empty: no floor
    assert load_settings(env={}).min_event_time is None


def test_the_development_scripts_variables_are_not_settings():
    env = {"SEGSTREAM_CACHE": "/tmp/c", "SEGSTREAM_STATE": "/tmp/s", "SEGSTREAM_ARTIFACTS": "/tmp/a"}
    assert load_settings(env=env).broker == "kafka://127.0.0.1:9092"
