"""The Faust app for some settings: made by :func:`create_app`, never at import.

``agents.build.build_worker`` registers the agents, tables and pages on it. Only
``segstream worker`` builds one; the other commands need no Faust app.
"""

from __future__ import annotations

import faust

from app.kafka import consumer
from app.kafka.recovery import SeekBeforeResumeTableManager
from app.settings import Settings


def create_app(config: Settings) -> faust.App:
    """The Faust app for ``config``. The app id and table names are a storage schema."""
    app = faust.App(
        config.app_id,
        broker=config.broker,
        store=config.store,
        datadir=config.data_dir,
        web_host=config.web_host,
        web_bind=config.web_host,
        web_port=config.web_port,
        topic_partitions=config.partitions,
        topic_allow_declare=True,
        processing_guarantee="at_least_once",
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=5,
        # Faust's 1 MiB default stalls on the 0.5 MiB record batches producers send (bench:
        # the empty agent idled 60% of its time). 4 MiB starved the one-partition
        # model-samples topic behind the clicks partitions; 256 KiB does neither.
        consumer_max_fetch_size=256 * 1024,
        table_cleanup_interval=3600.0,
        # The consumer runs in a thread of its own (Faust's ConsumerThread), so its heartbeats
        # go on while a batch or a fit holds the event loop; a third of the session, as Kafka advises.
        broker_session_timeout=config.group_session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.group_session_timeout_s / 3),
        web_enabled=True,
        autodiscover=False,
        # Faust's recovery resumes the clicks before seeking them, and after a restart the
        # committed offsets then crawl, one per commit (app/kafka/recovery.py).
        TableManager=SeekBeforeResumeTableManager,
    )
    consumer.install(app)  # Faust's fetch can take, and so lose, a batch of paused partitions
    if config.faust_metrics:
        from app import metrics

        app.monitor = metrics.faust_monitor()
    return app


