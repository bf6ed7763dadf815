"""``learn_segments``: sampled feature vectors in; model snapshots and drift events out."""

from __future__ import annotations

import logging
import pickle

import orjson

from app.core.learner import DriftEvent, Learner
from app.main import app, settings
from app.topics import model_samples, segment_drift
from tables.codecs import encode_model
from tables.learner_checkpoint import LEARNER, learner_checkpoint
from tables.segment_model import CURRENT, model_by_name

log = logging.getLogger(__name__)


def _restore_learner() -> Learner:
    """Resume from the checkpoint so versions keep increasing across restarts."""
    raw = learner_checkpoint.get(LEARNER)
    if raw is not None:
        learner = pickle.loads(raw)
        log.info("learner resumed at %d samples", learner.samples)
        return learner
    engine_cfg = settings.engine
    return Learner(
        engine_cfg.learner, features=engine_cfg.segmenter.features, log_features=engine_cfg.segmenter.log_features
    )


@app.agent(model_samples, concurrency=1)
async def learn_segments(stream):
    """Learn every sample; publish snapshots to the model table and drift to segment-drift."""
    learner = None
    async for batch in stream.take(settings.batch_size, within=settings.batch_within_s):
        if not settings.learn:
            continue
        if learner is None:
            learner = _restore_learner()
        published = None
        for raw in batch:
            vector, ts = orjson.loads(raw)
            for output in learner.learn(vector, ts):
                if isinstance(output, DriftEvent):
                    log.warning("drift: model v%d -> v%d", output.previous_version, output.version)
                    await segment_drift.send(value=orjson.dumps(output.to_dict()))
                else:
                    published = output
        # published: the newest ModelSnapshot of this batch, if any
        if published is not None:
            model_by_name[CURRENT] = encode_model(published)
            learner_checkpoint[LEARNER] = pickle.dumps(learner)
            log.info("published model v%d after %d samples", published.version, learner.samples)
