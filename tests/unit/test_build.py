"""The worker's app is built from settings, never at import, and only by the worker."""

from __future__ import annotations

import subprocess
import sys

from agents.build import build_worker
from app.settings import load_settings
from tests.kafka_harness import ROOT

WORKER_AGENTS = {"agents.segment_users.segment_users", "agents.learn_segments.learn_segments",
                 "agents.erase_users.erase_users"}  # fmt: skip
PAGES = {"/users/{user_id}", "/segments", "/segments/{segment_id}/users", "/healthz", "/readyz", "/openapi.json",
         "/metrics", "/dashboard", "/dashboard/assets/{name}", "/dashboard/data"}  # fmt: skip


def test_each_build_is_an_app_of_its_own_settings_with_every_agent_and_page():
    first = build_worker(load_settings(env={"SEGSTREAM_APP_ID": "one", "SEGSTREAM_PARTITIONS": "3"}))
    second = build_worker(load_settings(env={"SEGSTREAM_APP_ID": "two", "SEGSTREAM_TOPIC_PREFIX": "two-",
                                             "SEGSTREAM_WEBHOOK_URL": "https://example.invalid/hook",
                                             "SEGSTREAM_WEBHOOK_SECRET": "whsec_dGVzdA=="}))  # fmt: skip
    assert first.app is not second.app and first.engine is not second.engine
    assert set(first.app.agents) == WORKER_AGENTS  # no webhook subscribers: no delivery agents
    assert set(second.app.agents) > WORKER_AGENTS | {"agents.deliver_webhooks.deliver_changes"}
    assert set(first.app.web.views) == PAGES == set(second.app.web.views)
    assert first.table.changelog_topic.get_topic_name() == "one-user_to_state-changelog"
    assert first.topics.clicks.get_topic_name() == "clicks" and first.topics.clicks.partitions == 3
    assert second.topics.clicks.get_topic_name() == "two-clicks"
    assert second.topics.webhook_retries and not first.topics.webhook_retries


def test_commands_other_than_the_worker_import_no_faust(tmp_path):
    """Importing the command line, and running replay, builds no Faust app (it used to, at import)."""
    path = tmp_path / "clicks.jsonl"
    path.write_bytes(b'{"user_id": "u1", "type": "page_view", "ts": 1767225600}\n')
    script = (
        "import sys\n"
        "from app.cli import build_parser, run\n"
        "build_parser()\n"
        f"assert run(['replay', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}]) == 0\n"
        "print('faust' in sys.modules, 'agents' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "False False"
