"""One settings object: defaults, then the TOML file in SEGSTREAM_CONFIG, then SEGSTREAM_* env vars.

>>> s = load_settings(env={"SEGSTREAM_WEB_PORT": "7000", "SEGSTREAM_LEARN": "false"})
>>> s.web_port, s.learn, s.broker
(7000, False, 'kafka://127.0.0.1:9092')
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from app.core.engine.process import EngineConfig
from app.core.events.decode import MAX_MESSAGE_BYTES, parse_min_event_time
from app.core.features import FeatureConfig
from app.core.rules.language import RuleError, parse_duration
from app.core.rules.rulebook import RFM_SEGMENTS, CustomTrigger, RulesConfig, TriggerConfig
from app.core.segments.learner import LearnerConfig
from app.core.segments.segmenter import SegmenterConfig
from app.core.webhooks import Subscriber

ENV_PREFIX = "SEGSTREAM_"
# SEGSTREAM_* variables that are not settings: the config file's path, and the paths of
# the development scripts (scripts/services, scripts/test-tools) and test artifacts.
NOT_SETTINGS = frozenset({"SEGSTREAM_CONFIG", "SEGSTREAM_CACHE", "SEGSTREAM_STATE", "SEGSTREAM_ARTIFACTS"})


@dataclass(frozen=True)
class Settings:
    """Every setting; the README's configuration table documents each one."""

    app_id: str = "segstream"
    broker: str = "kafka://127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = 0.25  # every Redis call, connect included; no hidden retries
    redis_prefix: str = "segstream:"
    profiles: bool = True  # keep user profiles in Redis (app/redis/profiles.py)
    # The profile materialiser (app/redis/materialiser.py) runs in the worker; false: run it
    # as `segstream profiles follow`, a process of its own.
    materialise_in_worker: bool = True
    profile_ttl_s: float = 30 * 86_400.0  # a profile expires this long after its last write
    api_token: str = ""  # when set, the lookup API wants "Authorization: Bearer <token>"
    api_auth: str = "token"  # "none": serve beyond loopback without a token, on purpose (check_exposure)
    api_port: int = 6067  # `segstream api`, the lookup API in a process of its own
    worker_url: str = ""  # where `segstream api` asks on a Redis miss (default: this host's web_port)
    webhook_url: str = ""  # one subscriber receiving everything (with webhook_secret)
    webhook_secret: str = ""
    webhook_timeout_s: float = 10.0  # one attempt, connect to last byte
    webhook_max_attempts: int = 8  # then the event goes to webhooks-dlq
    webhook_backoff_s: float = 10.0  # retry n waits up to webhook_backoff_s * 2^(n-1) (full jitter) ...
    webhook_backoff_max_s: float = 3_600.0  # ... and never longer, a Retry-After included
    webhooks: tuple[Subscriber, ...] = ()  # [[webhooks]] in the config file, plus webhook_url
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    store: str = "memory://"
    data_dir: str = ".segstream-data"
    topic_prefix: str = ""
    partitions: int = 4
    batch_size: int = 1_000
    batch_within_s: float = 0.2
    state_cache_users: int = 200_000
    # A user quiet this long after every output in their state was proven delivered is
    # written once without them (app/kafka/outbox.py): memory, against one changelog record.
    proven_outputs_idle_s: float = 60.0
    max_message_bytes: int = 1_048_576
    max_future_s: float = 86_400.0
    min_event_time: float | None = None  # epoch seconds; earlier events are dead letters (None: any since 1970)
    learn: bool = True
    model_file: str = ""
    idle_after_s: float = 30.0  # no click, and none unread on the broker, this long: the watermark advances
    start_timeout_s: float = 60.0  # at start: how long the worker waits for the broker and its topics
    shutdown_timeout_s: float = 30.0  # after SIGTERM/SIGINT the worker exits within this (app/kafka/shutdown.py)
    # A worker that dies without leaving its consumer group (SIGKILL, a lost host) holds its
    # partitions this long, and its replacement waits that long to be ready (Faust's 60 s).
    group_session_timeout_s: float = 10.0
    # Topics that hold copies of user data for a while (dead letters, retries, learner
    # samples) keep it at most this long, so that they forget erased users too.
    user_data_retention_s: float = 7 * 86_400.0
    log_level: str = "info"
    log_format: str = "text"  # "json": one JSON object a line (app/logs.py)
    faust_metrics: bool = True  # Faust's own Prometheus sensor (faust_* metrics) on /metrics
    engine: EngineConfig = field(default_factory=EngineConfig)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def state_changelog(self) -> str:
        """The user-state table's changelog topic (Faust names it after the app id)."""
        return f"{self.app_id}-user_to_state-changelog"


def _port(value: int) -> bool:
    return 1 <= value <= 65_535


def _positive(value: float) -> bool:
    return value > 0


def _at_least_1(value: int) -> bool:
    return value >= 1


def _not_negative(value: float) -> bool:
    return value >= 0


# The range of each numeric setting, checked at start: a value out of it stops the start-up.
_RANGES: dict[str, tuple[Any, str]] = {
    "redis_timeout_s": (_positive, "greater than 0"),
    "profile_ttl_s": (_positive, "greater than 0"),
    "api_port": (_port, "a TCP port, 1 to 65535"),
    "web_port": (_port, "a TCP port, 1 to 65535"),
    "webhook_timeout_s": (_positive, "greater than 0"),
    "webhook_max_attempts": (_at_least_1, "at least 1"),
    "webhook_backoff_s": (_not_negative, "0 or more"),
    "webhook_backoff_max_s": (_not_negative, "0 or more"),
    "partitions": (_at_least_1, "at least 1"),
    "batch_size": (_at_least_1, "at least 1"),
    "batch_within_s": (_positive, "greater than 0"),
    "state_cache_users": (_at_least_1, "at least 1"),
    "proven_outputs_idle_s": (_not_negative, "0 or more"),
    # A larger message would not fit the producer's and the broker's default limit of 1 MiB.
    "max_message_bytes": (lambda v: 1 <= v <= MAX_MESSAGE_BYTES, f"1 to {MAX_MESSAGE_BYTES} (Kafka's 1 MiB)"),
    "max_future_s": (_not_negative, "0 or more"),
    "idle_after_s": (_positive, "greater than 0"),
    "user_data_retention_s": (_positive, "greater than 0"),
    "start_timeout_s": (_positive, "greater than 0"),
    "shutdown_timeout_s": (_positive, "greater than 0"),
    # The broker's group.min.session.timeout.ms and group.max.session.timeout.ms (defaults).
    "group_session_timeout_s": (lambda v: 6 <= v <= 1_800, "6 to 1800 (the broker's limits)"),
}
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _check(values: Mapping[str, Any]) -> None:
    """Stop the start-up on a value out of its range, naming the setting and the range."""
    for name, (valid, text) in _RANGES.items():
        if name in values and not valid(values[name]):
            raise SystemExit(f"segstream: setting {name} must be {text}, got {values[name]!r}")
    if values.get("log_format", "text") not in ("text", "json"):
        raise SystemExit(f"segstream: setting log_format must be text or json, got {values['log_format']!r}")
    if str(values.get("log_level", "info")).lower() not in _LOG_LEVELS:
        raise SystemExit(f"segstream: setting log_level must be one of {', '.join(_LOG_LEVELS)}, "
                         f"got {values['log_level']!r}")  # fmt: skip
    if values.get("api_auth", "token") not in ("token", "none"):
        raise SystemExit(f"segstream: setting api_auth must be token or none, got {values['api_auth']!r}")
    if values.get("api_auth") == "none" and values.get("api_token"):
        raise SystemExit("segstream: api_auth is none but api_token is set: drop one of them")
    if not str(values.get("store", "memory://")).startswith(("memory://", "rocksdb://")):
        raise SystemExit(f"segstream: setting store must be memory:// or rocksdb://, got {values['store']!r}")


def _check_names(env: Mapping[str, str], scalars: Collection[str]) -> None:
    """Stop the start-up on a SEGSTREAM_* variable that names no setting: a typo would be ignored."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in scalars} | NOT_SETTINGS
    for variable in sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known):
        # Matched without the prefix, which every name shares and would make any two look alike.
        suffixes = {name.removeprefix(ENV_PREFIX): name for name in known}
        close = difflib.get_close_matches(variable.removeprefix(ENV_PREFIX), sorted(suffixes), n=1, cutoff=0.6)
        hint = f"; did you mean {suffixes[close[0]]}?" if close else ""
        raise SystemExit(f"segstream: unknown setting {variable} in the environment{hint}")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the config file named by SEGSTREAM_CONFIG and the environment."""
    env = os.environ if env is None else env
    doc: dict[str, Any] = {}
    path = env.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            doc = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SystemExit(f"segstream: cannot read config file {path}: {exc}") from None
    sections = {name: doc.pop(name, {}) for name in ("features", "segmenter", "learner", "rules")}
    subscribers = doc.pop("webhooks", [])
    scalars = {f.name: f for f in fields(Settings) if f.name not in ("engine", "webhooks")}
    unknown = sorted(set(doc) - set(scalars))
    if unknown:
        raise SystemExit(f"segstream: unknown settings {unknown} in {path}")
    _check_names(env, scalars)
    values: dict[str, Any] = {}
    for name, spec in scalars.items():
        raw = env.get(f"{ENV_PREFIX}{name.upper()}", doc.get(name))
        if raw is not None:
            values[name] = _min_event_time(raw) if name == "min_event_time" else _coerce(name, spec.type, raw)
    try:  # EngineConfig parses and type-checks every rule: errors stop the start-up here
        values["engine"] = EngineConfig(
            features=_section(FeatureConfig, sections["features"], "features"),
            segmenter=_section(SegmenterConfig, sections["segmenter"], "segmenter"),
            learner=_section(LearnerConfig, sections["learner"], "learner"),
            rules=rules_config(sections["rules"]),
        )
    except RuleError as exc:
        raise SystemExit(f"segstream: invalid rule in [rules]: {exc}") from None
    _check(values)
    values["webhooks"] = webhooks_config(subscribers, values.get("webhook_url", ""), values.get("webhook_secret", ""))
    return Settings(**values)


def check_exposure(settings: Settings, server: str) -> None:
    """Refuse to serve profiles beyond loopback without a token, unless ``api_auth`` is ``none``.

    Profiles carry traits: an open port on a shared network would hand them to anyone.

    >>> check_exposure(load_settings(env={}), "the worker")
    >>> check_exposure(load_settings(env={"SEGSTREAM_WEB_HOST": "0.0.0.0"}), "the worker")
    Traceback (most recent call last):
    ...
    SystemExit: segstream: the worker would serve profiles on 0.0.0.0 to anyone: set SEGSTREAM_API_TOKEN, or SEGSTREAM_API_AUTH=none to serve without a token on purpose
    >>> check_exposure(load_settings(env={"SEGSTREAM_WEB_HOST": "0.0.0.0", "SEGSTREAM_API_AUTH": "none"}), "the worker")
    """
    if settings.api_token or settings.api_auth == "none" or _loopback(settings.web_host):
        return
    raise SystemExit(
        f"segstream: {server} would serve profiles on {settings.web_host} to anyone: set SEGSTREAM_API_TOKEN, "
        "or SEGSTREAM_API_AUTH=none to serve without a token on purpose"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def webhooks_config(items: list[dict[str, Any]], url: str, secret: str) -> tuple[Subscriber, ...]:
    """``[[webhooks]]`` subscribers, plus one named ``default`` for ``webhook_url``.

    >>> [s.name for s in webhooks_config([{"name": "crm", "url": "https://crm.example/hook", "secret": "k",
    ...                                    "triggers": ["cart_abandon"], "changes": ["entered"]}],
    ...                                  "http://127.0.0.1:8000/all", "k2")]
    ['crm', 'default']
    """
    subscribers = []
    try:
        for item in items:
            fields_ = {k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}
            subscribers.append(Subscriber(**fields_))
        if url:
            subscribers.append(Subscriber("default", url, secret))
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"segstream: invalid webhook settings: {exc}") from None
    names = [s.name for s in subscribers]
    if len(set(names)) != len(names):
        raise SystemExit(f"segstream: webhook names must be unique, got {names}")
    return tuple(subscribers)


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    kind = {"int": int, "float": float, "bool": bool, "str": str}.get(kind, kind)
    if kind is bool and isinstance(raw, str):
        if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise SystemExit(f"segstream: setting {name} must be true or false, got {raw!r}")
        return raw.lower() in ("1", "true", "yes")
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise SystemExit(f"segstream: setting {name} must be {kind.__name__}, got {raw!r}") from None


def _min_event_time(raw: Any) -> float | None:
    """RFC 3339 (a TOML date-time too) or epoch seconds; empty means no floor.

    >>> _min_event_time("2020-01-01T00:00:00Z"), _min_event_time(""), _min_event_time(1577836800)
    (1577836800.0, None, 1577836800.0)
    """
    if raw == "":
        return None
    try:
        return parse_min_event_time(raw)
    except ValueError as exc:
        raise SystemExit(f"segstream: setting min_event_time: {exc}") from None


def _section(cls: type, values: dict[str, Any], name: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"segstream: unknown settings {unknown} in [{name}]; known: {sorted(known)}")
    converted = {
        key: tuple(value) if isinstance(value, list) else value for key, value in values.items()
    }
    if "windows" in converted:
        converted["windows"] = {k: tuple(v) for k, v in converted["windows"].items()}
    if "categorical_traits" in converted:
        converted["categorical_traits"] = {k: tuple(v) for k, v in converted["categorical_traits"].items()}
    try:
        return dataclasses.replace(cls(), **converted)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"segstream: invalid [{name}] settings: {exc}") from None


def rules_config(doc: dict[str, Any]) -> RulesConfig:
    """The ``[rules]`` section: segments, triggers and the default time zone.

    >>> config = rules_config({"segments": {"vip": "monetary > 500"},
    ...                        "triggers": {"cart_abandon": "45m", "custom": [
    ...                            {"name": "stalled", "when": "event == 'checkout'", "unless": "purchase",
    ...                             "within": "10m"}]}})
    >>> sorted(config.segments)[:3], config.triggers.cart_abandon_s, config.triggers.custom[0].within_s
    (['about_to_sleep', 'at_risk', 'champions'], 2700, 600)
    """
    doc = dict(doc)
    try:
        segments = {**(RFM_SEGMENTS if doc.pop("rfm_segments", True) else {}), **doc.pop("segments", {})}
        triggers = dict(doc.pop("triggers", {}))
        custom = tuple(
            CustomTrigger(item["name"], item["when"], item.get("unless"), _seconds(item.get("within", 0)))
            for item in triggers.pop("custom", [])
        )
        renamed = {"cart_abandon": "cart_abandon_s", "hot_lead_window": "hot_lead_window_s"}
        values = {renamed.get(k, k): v for k, v in triggers.items()}
        for key in ("cart_abandon_s", "hot_lead_window_s"):
            if key in values:
                values[key] = _seconds(values[key])
        return RulesConfig(segments=segments, triggers=TriggerConfig(**values, custom=custom), **doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise SystemExit(f"segstream: invalid [rules] settings: {exc}") from None


def _seconds(value: Any) -> int:
    """A duration: "30m", "1h", or a number of seconds; false or 0 turns a trigger off."""
    if value is False or value == 0:
        return 0
    return parse_duration(value) if isinstance(value, str) else int(value)
