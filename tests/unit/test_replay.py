"""``segstream replay``: the output files and their formats, from JSON Lines and from CSV."""

from __future__ import annotations

import csv

import orjson
import pytest

from app.cli import run
from app.replay_io import OUTPUT_FILES
from app.simulator import Scenario, generate


@pytest.fixture(scope="module")
def clicks_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "clicks.jsonl"
    lines = [message.to_bytes() for message in generate(Scenario(users=300, events=30_000, seed=5))]
    lines.insert(100, b"{broken")
    lines.insert(200, b'[{"user_id": "u000001", "type": "search"}, {"user_id": "zz", "type": "x", "ts": 1767225600}]')
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def read_jsonl(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_replay_writes_every_output_file(clicks_file, tmp_path, capsys):
    assert run(["replay", str(clicks_file), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUT_FILES)
    summary = capsys.readouterr().out
    assert "30,003 events in 30,002 messages" in summary and "dead letters 2" in summary

    dlq = read_jsonl(tmp_path / "dlq.jsonl")
    assert [(d["source"]["line"], d["source"]["index"]) for d in dlq] == [(101, None), (201, 0)]
    assert dlq[0]["reason"].startswith("not JSON") and dlq[0]["payload"] == "{broken"
    assert dlq[1]["reason"] == "field 'ts': missing"

    profiles = {p["user_id"]: p for p in read_jsonl(tmp_path / "profiles.jsonl")}
    assert len(profiles) == 301  # 300 simulated users and "zz" from the array
    some = profiles["u000001"]
    assert {"recency_days", "frequency", "monetary", "activity_24h"} <= some["features"].keys()

    changes = read_jsonl(tmp_path / "segment_changes.jsonl")
    assert {c["kind"] for c in changes} == {"cluster", "rule"}
    final = {c["user_id"]: c["segment"] for c in changes if c["kind"] == "cluster"}
    assert all(profiles[user]["segment"] == segment for user, segment in final.items())
    in_rules: dict[str, set] = {}
    for c in changes:
        if c["kind"] == "rule":
            (in_rules.setdefault(c["user_id"], set()).add if c["change"] == "entered" else
             in_rules.setdefault(c["user_id"], set()).discard)(c["segment"])  # fmt: skip
    assert all(set(profiles[user]["rules"]) == rules for user, rules in in_rules.items())
    triggers = read_jsonl(tmp_path / "triggers.jsonl")
    assert {t["trigger"] for t in triggers} == {"cart_abandon", "hot_lead"}  # 7 days: too short for win_back
    model = orjson.loads((tmp_path / "model.json").read_bytes())
    assert model["version"] >= 1 and len(model["segment_ids"]) == model["selection"]["k"] >= 2


def test_replay_with_a_fixed_model_is_deterministic(clicks_file, tmp_path):
    run(["replay", str(clicks_file), "--out", str(tmp_path / "train")])
    model = tmp_path / "train" / "model.json"
    for name in ("a", "b"):
        run(["replay", str(clicks_file), "--out", str(tmp_path / name), "--model", str(model), "--no-learn"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "emitted_at"} for r in rows]  # noqa: E731
    a = strip(read_jsonl(tmp_path / "a" / "segment_changes.jsonl"))
    b = strip(read_jsonl(tmp_path / "b" / "segment_changes.jsonl"))
    assert a and a == b
    assert {c["model_version"] for c in a} == {orjson.loads(model.read_bytes())["version"]}


def test_replay_reads_csv_with_contract_headers(tmp_path, capsys):
    path = tmp_path / "clicks.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "type", "ts", "value", "device", "traits.age", "consent"])
        writer.writerow(["u1", "identify", "2026-01-01T00:00:00Z", "", "mobile", "33", "true"])
        writer.writerow(["u1", "purchase", "1767225660", "19.5", "mobile", "", ""])
        writer.writerow(["u2", "purchase", "1767225660", "-1", "", "", ""])
    assert run(["replay", str(path), "--out", str(tmp_path / "out")]) == 0
    profiles = {p["user_id"]: p for p in read_jsonl(tmp_path / "out" / "profiles.jsonl")}
    assert profiles["u1"]["features"]["monetary"] == 19.5
    assert profiles["u1"]["features"]["trait_age"] == 33.0
    (letter,) = read_jsonl(tmp_path / "out" / "dlq.jsonl")
    assert letter["source"]["line"] == 4 and "field 'value'" in letter["reason"]


def test_replay_of_a_missing_file_fails_clearly(tmp_path, capsys):
    assert run(["replay", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err


HISTORY_1997 = [  # a purchase history from 1997, in each form of the ts contract
    b'{"user_id": "u1", "type": "page_view", "ts": "1997-03-01T10:00:00Z"}',
    b'{"user_id": "u1", "type": "purchase", "ts": "1997-03-01T10:05:00Z", "value": 10}',
    b'{"user_id": "u1", "type": "purchase", "ts": 858420000, "value": 20}',  # 1997-03-15T10:00:00Z, seconds
    b'[{"user_id": "u2", "type": "product_view", "ts": 858844800000},'  # 1997-03-20T08:00:00Z, milliseconds
    b' {"user_id": "u2", "type": "purchase", "ts": "1997-03-20T09:00:00+01:00", "value": 5.5}]',
    b'{"user_id": "u3", "type": "page_view", "ts": "1997-03-31T00:00:00Z"}',
]


def test_replay_of_a_1997_history_gives_features_as_of_1997(tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join([*HISTORY_1997, b'{"user_id": "u4", "type": "search", "ts": -1}']) + b"\n")
    assert run(["replay", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "valid 6 · late 0 · duplicate 0 · dead letters 1" in capsys.readouterr().out
    (letter,) = read_jsonl(tmp_path / "out" / "dlq.jsonl")
    assert letter["source"]["line"] == 6 and letter["reason"] == "field 'ts': must be on or after 1970-01-01T00:00:00Z"

    profiles = {p["user_id"]: p for p in read_jsonl(tmp_path / "out" / "profiles.jsonl")}
    assert sorted(profiles) == ["u1", "u2", "u3"]
    rfm = {user: tuple(p["features"][k] for k in ("recency_days", "frequency", "monetary"))
           for user, p in profiles.items()}
    # As of the stream's last event, 1997-03-31T00:00:00Z: not of today's wall clock.
    assert rfm == {"u1": (15.5833, 2, 30.0), "u2": (10.6667, 1, 5.5), "u3": (None, 0, 0.0)}
    assert {p["updated_at"] for p in profiles.values()} == {"1997-03-31T00:00:00.000Z"}
    assert profiles["u1"]["last_event_at"] == "1997-03-15T10:00:00.000Z"


def test_replay_applies_the_min_event_time_setting(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEGSTREAM_MIN_EVENT_TIME", "1997-03-15T00:00:00Z")  # replay reads the settings when it runs
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(HISTORY_1997) + b"\n")
    assert run(["replay", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "valid 4 · late 0 · duplicate 0 · dead letters 2" in capsys.readouterr().out
    letters = read_jsonl(tmp_path / "out" / "dlq.jsonl")
    assert [(d["source"]["line"], d["reason"]) for d in letters] == [
        (1, "field 'ts': before min_event_time 1997-03-15T00:00:00Z"),
        (2, "field 'ts': before min_event_time 1997-03-15T00:00:00Z"),
    ]
    profiles = {p["user_id"]: p for p in read_jsonl(tmp_path / "out" / "profiles.jsonl")}
    assert (profiles["u1"]["features"]["frequency"], profiles["u1"]["features"]["monetary"]) == (1, 20.0)


def test_replay_dead_letters_what_the_state_cannot_hold_and_keeps_the_rest(tmp_path, capsys):
    """A 2**70 trait crashed replay when the profiles were written; 1e308 twice made monetary infinite."""
    lines = [
        b'{"user_id": "u1", "type": "identify", "ts": 1767225600, "traits": {"n": 1180591620717411303424}}',
        b'{"user_id": "u2", "type": "purchase", "ts": 1767225601, "value": 1e308}',
        b'{"user_id": "u2", "type": "purchase", "ts": 1767225602, "value": 1e308}',
        b"[]",
        b'{"user_id": "u3", "type": "purchase", "ts": 1767225603, "value": 12.5, "traits": {"n": 9223372036854775807}}',
    ]
    path = tmp_path / "poison.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert run(["replay", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "valid 1 · late 0 · duplicate 0 · dead letters 4" in capsys.readouterr().out
    reasons = [letter["reason"] for letter in read_jsonl(tmp_path / "out" / "dlq.jsonl")]
    assert [reason.split(":")[0] for reason in reasons] == ["field 'traits.n'", "field 'value'", "field 'value'",
                                                             "empty array"]  # fmt: skip
    (profile,) = read_jsonl(tmp_path / "out" / "profiles.jsonl")
    assert profile["user_id"] == "u3" and profile["features"]["monetary"] == 12.5


def test_a_model_file_without_a_model_starts_fresh_and_a_broken_one_fails_clearly(clicks_file, tmp_path, capsys):
    """A replay too small for a model writes ``null``; starting from it crashed with a TypeError."""
    empty = tmp_path / "none.json"
    empty.write_bytes(b"null")
    assert run(["replay", str(clicks_file), "--out", str(tmp_path / "a"), "--model", str(empty)]) == 0
    assert "holds no model" in capsys.readouterr().err
    assert run(["replay", str(clicks_file), "--out", str(tmp_path / "b"), "--model", str(empty), "--no-learn"]) == 2
    assert "--no-learn needs --model, with a model in it" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"version": 3}')
    assert run(["replay", str(clicks_file), "--out", str(tmp_path / "c"), "--model", str(broken)]) == 2
    assert "is not a segstream model" in capsys.readouterr().err
    assert run(["replay", str(clicks_file), "--out", str(tmp_path / "d"), "--model", str(tmp_path / "gone.json")]) == 2
    assert "cannot read --model" in capsys.readouterr().err
