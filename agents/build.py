"""``build_worker``: one worker's app from the settings, with every agent, table, timer and page on it.

Nothing is built at import: ``segstream worker`` calls it once, and every other
command builds no Faust app.
"""

from __future__ import annotations

from agents import dashboard, deliver_webhooks, erase_users, learn_segments, pages, segment_users, write_profiles
from agents.worker_app import WorkerApp
from app import metrics
from app.core.engine.process import Engine
from app.core.segments.segment_sizes import SegmentSizes
from app.http.dashboard import engine_feed
from app.kafka.faust_app import create_app
from app.kafka.model_feed import ModelFeed
from app.kafka.topics import Topics
from app.redis.materialiser import ProfileMaterialiser
from app.redis.profiles import RedisProfileStore
from app.settings import Settings
from tables.user_state import UserStateCache, user_state_table

__all__ = ["build_worker"]


def build_worker(settings: Settings) -> WorkerApp:
    """The worker's app for ``settings``, with every agent, table, timer and page registered on it."""
    app = create_app(settings)
    topics = Topics(app, settings)
    table = user_state_table(app, settings)
    engine = Engine(settings.engine)
    sizes = SegmentSizes()
    metrics.segment_users.follow(sizes.items)
    profile_store = RedisProfileStore.from_settings(settings)
    worker = WorkerApp(
        settings=settings, app=app, topics=topics, table=table,
        states=UserStateCache(app, table, max_users=settings.state_cache_users),
        engine=engine, segment_sizes=sizes,
        dashboard=engine_feed("worker", lambda: engine.model, settings.engine.rules.segments, sizes.items),
        model_feed=app.service(ModelFeed(settings.broker, topics.segment_model.get_topic_name())),
        profile_store=profile_store,
        materialiser=ProfileMaterialiser.from_settings(settings, profile_store, lambda: engine.model,
                                                       observe=metrics.observe_profiles),
    )  # fmt: skip
    learn_segments.register(worker)
    deliver_webhooks.register(worker)
    dashboard.register(worker)
    clicks = segment_users.register(worker)
    erase_users.register(worker, clicks)
    write_profiles.register(worker)
    pages.register(worker)
    return worker
