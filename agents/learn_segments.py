"""``learn_segments``: sampled feature vectors and RFM measures in; model snapshots and drift events out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from app import metrics
from app.core.segments import checkpoint
from app.core.segments.learner import DriftEvent, Learner
from app.kafka.cancel_safe import batches
from app.kafka.delivery import guard
from app.kafka.model_feed import CURRENT, LEARNER, ModelFeed
from app.settings import Settings
from tables.codecs import decode_model, encode_model

if TYPE_CHECKING:
    from agents.worker_app import WorkerApp

log = logging.getLogger(__name__)


def register(worker: WorkerApp) -> None:
    """The learner's agent: the worker that owns the one model-samples partition learns."""
    settings, topics, model_feed = worker.settings, worker.topics, worker.model_feed

    @worker.app.agent(topics.model_samples, name=f"{__name__}.learn_segments", concurrency=1)
    async def learn_segments(stream):
        """Learn every sample; publish snapshots and checkpoints to segment-model, drift to segment-drift."""
        learner = None
        async for batch in batches(stream, settings.batch_size, settings.batch_within_s):
            if not settings.learn:
                continue
            if learner is None:
                await model_feed.caught_up.wait()
                learner = _restore_learner(settings, model_feed)
            await _learn_batch(learner, batch, topics)


def _restore_learner(settings: Settings, model_feed: ModelFeed) -> Learner:
    """Resume from the checkpoint on segment-model so versions keep increasing across restarts.

    A checkpoint learned under another learner configuration or feature list is not resumed
    (its pickled configuration would silently override the settings): a fresh learner
    starts, and its versions continue from the published model's.
    """
    engine_cfg = settings.engine
    features = tuple(engine_cfg.segmenter.features)
    raw = model_feed.latest.get(LEARNER)
    if raw is not None:
        learner = checkpoint.loads(raw)  # None for an older learner layout: start afresh, versions still grow
        resumable = isinstance(learner, Learner) and hasattr(learner, "resumes")
        if resumable and learner.resumes(engine_cfg.learner, features):
            log.info("learner resumed at %d samples", learner.samples)
            return learner
        log.warning("learner checkpoint of another layout or configuration: learning afresh")
    current = model_feed.latest.get(CURRENT)
    return Learner(
        engine_cfg.learner, features=features, log_features=engine_cfg.segmenter.log_features,
        first_version=decode_model(current).version if current is not None else 0,
    )  # fmt: skip


async def _learn_batch(learner: Learner, batch, topics) -> None:
    published = None
    samples, erased = [], False
    for raw in batch:
        doc = orjson.loads(raw)
        if isinstance(doc, dict):  # {"erase": [user ids]}: erased users leave the learner's samples
            for user in doc.get("erase", ()):
                learner.forget(user)
            erased = True
        else:
            samples.extend(doc)
    for vector, ts, *rest in samples:  # [vector | null, ts, rfm | null, user]
        rfm, user = (rest + [None, None])[:2]
        if rfm is not None:
            published = next(iter(learner.learn_rfm(*rfm, ts=ts)), published)  # RFM-only, before clusters
        if vector is None:
            continue
        for output in learner.learn(vector, ts, user=user):
            if isinstance(output, DriftEvent):
                log.warning("drift: model v%d -> v%d", output.previous_version, output.version)
                metrics.drifts.inc()
                guard.track(await topics.segment_drift.send(value=orjson.dumps(output.to_dict())))
            else:
                published = output
    # published: the newest ModelSnapshot of this batch, if any
    if published is not None or erased:  # a checkpoint without the erased users replaces the last one
        guard.track(await topics.segment_model.send(key=LEARNER, value=checkpoint.dumps(learner)))
    if published is not None:
        guard.track(await topics.segment_model.send(key=CURRENT, value=encode_model(published)))
        log.info("published model v%d after %d samples", published.version, learner.samples)
