"""The lookup API of a real worker: profiles from Redis (or the table), segments, auth, Redis down, rebuild."""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime
from urllib.parse import quote

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from redis import Redis

from tests.kafka_harness import SEGSTREAM, Worker, produce, wait_until_consumed
from tests.polling import poll
from tests.scrape import sample

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REDIS_URL = "redis://127.0.0.1:6379/0"  # the worker's default, from scripts/services
NOW = time.time()
BUYERS = [f"buyer-{i:03d}" for i in range(200)]  # more than a small sorted set holds (128): pages are real


def _click(user: str, kind: str, offset_s: float, **fields) -> tuple[bytes, bytes]:
    doc = {"user_id": user, "type": kind, "ts": NOW - 600 + offset_s, "event_id": f"{user}-{offset_s}", **fields}
    return user.encode(), orjson.dumps(doc)


# user -> their events, in event-time order; each user's profile has seq == len(events)
EVENTS = {
    "alice": [
        _click("alice", "page_view", 0, page="/home"),
        _click("alice", "product_view", 10, page="/p/1"),
        _click("alice", "add_to_cart", 20, page="/p/1", value=20.0),
        _click("alice", "purchase", 30, page="/checkout", value=20.0),
    ],
    "bob": [_click("bob", "page_view", 5, page="/home"), _click("bob", "add_to_cart", 15, page="/p/2", value=5.0)],
    "carol": [
        _click("carol", "identify", 1, traits={"plan": "pro", "age": 31}),
        _click("carol", "purchase", 2, value=12.5),
        _click("carol", "purchase", 3, value=7.5),
    ],
    "erin": [_click("erin", "page_view", 7, page="/blog")],
    "zoë @home": [_click("zoë @home", "page_view", 8)],  # any printable id, percent-encoded in the path
    **{user: [_click(user, "purchase", 40, value=1.0)] for user in BUYERS},
}
NAMED = ["alice", "bob", "carol", "erin", "zoë @home"]
BUYER_SET = {"alice", "carol", *BUYERS}  # rule:buyer is "purchases >= 1"


# --- HTTP ----------------------------------------------------------------------------------------


class Reply:
    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, body

    @property
    def json(self):
        assert self.headers.get("Content-Type", "").startswith("application/json"), self.headers
        return orjson.loads(self.raw)


def get(port: str, path: str, token: str | None = None) -> Reply:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


# --- The OpenAPI document's schemas --------------------------------------------------------------

_formats = FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _is_date_time(value) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


class Contract:
    """Validates bodies against ``#/components/schemas/<name>`` of the served /openapi.json."""

    def __init__(self, document: dict) -> None:
        self.document = document

    def check(self, name: str, body) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": self.document["components"]}
        Draft202012Validator(schema, format_checker=_formats).validate(body)

    @classmethod
    def of(cls, port: str) -> Contract:
        """The contract a worker serves (no token needed)."""
        reply = get(port, "/openapi.json")
        assert reply.status == 200
        return cls(reply.json)


# --- One worker, fed with known users, shared by the module --------------------------------------


class Fed:
    def __init__(self, worker: Worker, contract: Contract) -> None:
        self.worker, self.contract = worker, contract
        self.port = worker.env["SEGSTREAM_WEB_PORT"]
        self.prefix = worker.env["SEGSTREAM_REDIS_PREFIX"]

    def get(self, path: str) -> Reply:
        assert self.worker.process.poll() is None, "the shared worker is down (a test stopped it?)"
        return get(self.port, path)


@pytest.fixture(scope="module")
def fed(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    config = tmp / "segstream.toml"
    config.write_text('[rules.segments]\nbuyer = "purchases >= 1"\n')
    worker = Worker(tmp, SEGSTREAM_CONFIG=str(config), SEGSTREAM_LEARN="false").start()  # no model: fixed segments
    redis = Redis.from_url(REDIS_URL)
    try:
        asyncio.run(produce(worker.topic("clicks"), [click for clicks in EVENTS.values() for click in clicks]))
        wait_until_consumed(worker, worker.topic("clicks"), timeout=60)
        fed = Fed(worker, Contract.of(worker.env["SEGSTREAM_WEB_PORT"]))
        for user, clicks in EVENTS.items():  # every profile reaches Redis (written by the 0.25 s timer)
            seq = len(clicks)
            poll(lambda user=user, seq=seq: _stored_seq(redis, fed.prefix, user) == seq, f"{user}'s profile in Redis")
        yield fed
    finally:
        worker.stop()
        for key in redis.scan_iter(match=f"{worker.env['SEGSTREAM_REDIS_PREFIX']}*", count=1000):
            redis.delete(key)
        redis.close()


def _stored_seq(redis: Redis, prefix: str, user: str) -> int | None:
    seq = redis.hget(f"{prefix}profile:{user}", "seq")
    return None if seq is None else int(seq)


def test_readyz_and_healthz_answer_200_once_started(fed):
    assert fed.get("/healthz").json == {"status": "ok"}
    assert fed.get("/readyz").status == 200 and fed.get("/readyz").json == {"status": "ready"}


def test_a_profile_carries_seq_interactions_traits_and_features(fed):
    alice = fed.get("/users/alice")
    assert alice.status == 200 and alice.headers["X-Segstream-Source"] == "redis"
    profile = alice.json
    assert profile["user_id"] == "alice" and profile["seq"] == 4
    assert [(i["type"], i.get("page"), i.get("value")) for i in profile["interactions"]] == [
        ("purchase", "/checkout", 20.0), ("add_to_cart", "/p/1", 20.0), ("product_view", "/p/1", None),
        ("page_view", "/home", None),
    ]  # fmt: skip
    assert profile["features"]["monetary"] == 20.0 and profile["features"]["purchases"] == 1
    assert "buyer" in profile["rules"] and profile["traits"] == {}
    assert datetime.fromisoformat(profile["last_event_at"]).timestamp() == pytest.approx(NOW - 600 + 30, abs=0.01)

    carol = fed.get("/users/carol").json
    assert carol["seq"] == 3 and carol["traits"] == {"plan": "pro", "age": 31}
    assert carol["features"]["monetary"] == 20.0 and carol["features"]["purchases"] == 2
    assert [i["type"] for i in carol["interactions"]] == ["purchase", "purchase", "identify"]

    bob = fed.get("/users/bob").json
    assert bob["seq"] == 2 and bob["features"]["monetary"] == 0.0 and "buyer" not in bob["rules"]


def test_every_answer_matches_the_openapi_document(fed):
    for user in NAMED:
        reply = fed.get(f"/users/{quote(user)}")
        assert reply.status == 200 and reply.json["user_id"] == user
        fed.contract.check("Profile", reply.json)
    segments = fed.get("/segments")
    assert segments.status == 200
    fed.contract.check("Segments", segments.json)
    page = fed.get("/segments/rule:buyer/users?limit=5")
    assert page.status == 200
    fed.contract.check("Members", page.json)
    for path in ("/healthz", "/readyz"):
        reply = fed.get(path)
        assert reply.status == 200
        fed.contract.check("Status", reply.json)


def test_an_unknown_user_is_404_and_a_bad_id_400(fed):
    unknown = fed.get("/users/nobody-here")
    assert unknown.status == 404 and unknown.json["error"] == "not_found"
    fed.contract.check("Error", unknown.json)
    bad = fed.get("/users/" + "x" * 300)
    assert bad.status == 400 and bad.json["error"] == "bad_user_id"
    fed.contract.check("Error", bad.json)
    for path, status, code in [
        ("/segments/rule:nope/users", 404, "not_found"),
        ("/segments/rule:buyer/users?limit=0", 400, "bad_limit"),
        ("/segments/rule:buyer/users?cursor=abc", 400, "bad_cursor"),
        ("/segments/rule:buyer/users?limit=%C2%B2", 400, "bad_limit"),  # "²": a digit to str.isdigit
        ("/segments/rule:buyer/users?cursor=%C2%B2", 400, "bad_cursor"),
        ("/segments/rule:buyer/users?cursor=" + "9" * 25, 400, "bad_cursor"),  # past Redis's 64-bit cursors
    ]:
        reply = fed.get(path)
        assert (reply.status, reply.json["error"]) == (status, code), path
        fed.contract.check("Error", reply.json)


def test_segments_list_the_rule_segments_with_their_sizes(fed):
    body = fed.get("/segments").json
    by_id = {segment["id"]: segment for segment in body["segments"]}
    assert {"rule:champions", "rule:loyal", "rule:at_risk", "rule:hibernating", "rule:new_customers",
            "rule:buyer"} <= set(by_id)  # fmt: skip
    assert by_id["rule:buyer"] == {"id": "rule:buyer", "kind": "rule", "name": "buyer", "rule": "purchases >= 1",
                                   "size": len(BUYER_SET)}  # fmt: skip
    assert all(type(segment["size"]) is int and segment["size"] >= 0 for segment in body["segments"])


def test_the_dashboard_data_has_sizes_history_and_the_latest_changes(fed):
    def sampled():  # the worker samples every 2 s; wait for a point that saw every user
        body = fed.get("/dashboard/data").json
        return body if any(point["sizes"].get("rule:buyer") == len(BUYER_SET) for point in body["history"]) else None

    body = poll(sampled, "a dashboard history point with every buyer", timeout=30)
    fed.contract.check("DashboardData", body)
    assert body["source"] == "worker" and body["model"] is None  # learn=false and no model file
    by_id = {segment["id"]: segment for segment in body["segments"]}
    assert by_id["rule:buyer"]["size"] == len(BUYER_SET)
    assert any(point["events_per_s"] > 0 for point in body["history"])
    recent = body["recent"]
    assert 0 < len(recent) <= 100  # the latest 50 changes and 50 triggers
    assert {entry["type"] for entry in recent} <= {"change", "trigger"}
    assert all(entry["user_id"] in EVENTS for entry in recent)


def test_paging_a_rule_segment_lists_exactly_its_users(fed):
    listed, cursor, pages = [], None, 0
    while True:
        query = "?limit=1" + (f"&cursor={cursor}" if cursor else "")
        reply = fed.get(f"/segments/rule:buyer/users{query}")
        assert reply.status == 200
        page = reply.json
        assert page["segment"] == "rule:buyer"
        listed += page["users"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 5_000, "next_cursor never became null"
    assert set(listed) == BUYER_SET  # a user may repeat across pages (ZSCAN), none is missing or extra
    assert pages > 1


def test_a_profile_missing_from_redis_comes_from_the_table(fed):
    from_redis = fed.get("/users/erin")
    assert from_redis.headers["X-Segstream-Source"] == "redis"
    redis = Redis.from_url(REDIS_URL)
    try:
        assert redis.delete(f"{fed.prefix}profile:erin") == 1
    finally:
        redis.close()
    reply = fed.get("/users/erin")
    assert reply.status == 200 and reply.headers["X-Segstream-Source"] == "table"
    profile = reply.json
    fed.contract.check("Profile", profile)
    assert profile["seq"] == 1 and [i["page"] for i in profile["interactions"]] == ["/blog"]
    assert {**profile, "updated_at": None} == {**from_redis.json, "updated_at": None}


def test_the_api_process_answers_like_the_worker_and_asks_it_on_a_miss(fed):
    from tests.kafka_harness import free_port

    port = str(free_port())
    server = subprocess.Popen([SEGSTREAM, "api"], env={**fed.worker.env, "SEGSTREAM_API_PORT": port},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        poll(lambda: _answers(port, "/readyz"), "segstream api ready")
        for path in ("/users/alice", "/users/nobody-here", "/segments", "/segments/rule:buyer/users?limit=500",
                     "/segments/rule:nope/users", "/users/" + "x" * 300,
                     "/users/..", "/users/%2e%2e", "/users/.", "/users/a%2Fb"):  # not the worker's root: 404s
            mine, theirs = get(port, path), fed.get(path)
            assert (mine.status, mine.json) == (theirs.status, theirs.json), path
        fed.contract.check("Profile", get(port, "/users/alice").json)
        redis = Redis.from_url(REDIS_URL)
        try:
            assert redis.delete(f"{fed.prefix}profile:bob") == 1
        finally:
            redis.close()
        reply = get(port, "/users/bob")  # not in Redis: the worker answers from its table
        assert reply.status == 200 and reply.headers["X-Segstream-Source"] == "worker:table"
        assert reply.json["seq"] == len(EVENTS["bob"])
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0].decode()
    assert "Traceback" not in output, output


def _answers(port: str, path: str) -> bool:
    try:
        return get(port, path).status == 200
    except OSError:  # not listening yet
        return False


def test_rebuild_writes_every_profile_back_from_the_changelog(fed):
    """Last in the module: it stops the shared worker."""
    fed.worker.stop()
    assert not fed.worker.errors(), fed.worker.errors()  # nor did any request above fail inside the worker
    redis = Redis.from_url(REDIS_URL)
    try:
        for key in redis.scan_iter(match=f"{fed.prefix}*", count=1000):
            redis.delete(key)
        assert _stored_seq(redis, fed.prefix, "alice") is None
        done = subprocess.run([SEGSTREAM, "profiles", "rebuild"], env=fed.worker.env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"{len(EVENTS)} written" in done.stdout, done.stdout
        assert {user: _stored_seq(redis, fed.prefix, user) for user in EVENTS} == {
            user: len(events) for user, events in EVENTS.items()
        }
        carol = orjson.loads(redis.hget(f"{fed.prefix}profile:carol", "json"))
        fed.contract.check("Profile", carol)
        assert carol["traits"] == {"plan": "pro", "age": 31} and carol["features"]["monetary"] == 20.0
        assert {m.decode() for m in redis.zrange(f"{fed.prefix}segment:rule:buyer", 0, -1)} == BUYER_SET
    finally:
        redis.close()


# --- Workers of their own ------------------------------------------------------------------------


def test_a_token_is_required_when_set_except_for_health(start_worker):
    worker = start_worker(SEGSTREAM_API_TOKEN="t")
    port = worker.env["SEGSTREAM_WEB_PORT"]
    contract = Contract.of(port)
    for path in ("/segments", "/users/alice", "/segments/rule:champions/users", "/dashboard/data"):
        for token in (None, "wrong", "T", "\xe9t\xff"):  # the last: bytes that are not UTF-8 (was a 500)
            reply = get(port, path, token)
            assert reply.status == 401, (path, token)
            assert reply.headers["WWW-Authenticate"] == "Bearer" and reply.json["error"] == "unauthorized"
            contract.check("Error", reply.json)
    segments = get(port, "/segments", "t")
    assert segments.status == 200
    contract.check("Segments", segments.json)
    assert get(port, "/users/nobody", "t").status == 404  # past the auth check
    assert get(port, "/healthz").status == 200


def test_with_redis_stopped_clicks_flow_profiles_wait_then_catch_up(start_worker, dedicated_redis):
    worker = start_worker(SEGSTREAM_REDIS_URL=dedicated_redis.url)
    port = worker.env["SEGSTREAM_WEB_PORT"]
    users = {f"down-{i}": [_click(f"down-{i}", "page_view", s, page=f"/{s}") for s in range(i + 1)] for i in range(8)}
    dedicated_redis.pause()
    try:
        asyncio.run(produce(worker.topic("clicks"), [click for clicks in users.values() for click in clicks]))
        wait_until_consumed(worker, worker.topic("clicks"), timeout=60)  # Redis does not hold up the clicks

        def stuck() -> bool:
            scrape = get(port, "/metrics").raw.decode()
            return ((sample(scrape, "segstream_profile_backlog") or 0.0) > 0
                    and (sample(scrape, "segstream_redis_errors_total", op="write") or 0.0) > 0)  # fmt: skip

        poll(stuck, "a profile backlog and failed writes while Redis is stopped", timeout=30)
        reply = get(port, "/users/down-3")  # Redis times out: the table answers
        assert reply.status == 200 and reply.headers["X-Segstream-Source"] == "table"
        assert reply.json["seq"] == 4
        Contract.of(port).check("Profile", reply.json)
    finally:
        dedicated_redis.resume()

    redis = Redis.from_url(dedicated_redis.url)
    try:
        poll(lambda: all(_stored_seq(redis, worker.env["SEGSTREAM_REDIS_PREFIX"], user) == len(clicks)
                         for user, clicks in users.items()), "every profile in Redis after it resumed")  # fmt: skip
    finally:
        redis.close()
    poll(lambda: (sample(get(port, "/metrics").raw.decode(), "segstream_profile_backlog") or 0.0) == 0,
         "backlog back to 0")
    reply = get(port, "/users/down-7")
    assert reply.headers["X-Segstream-Source"] == "redis" and reply.json["user_id"] == "down-7"
    assert reply.json["seq"] == 8
    assert not worker.errors(), worker.errors()  # Redis down is a warning (the backlog), not an error
