"""What talks to Kafka and Faust: the app (:mod:`.faust_app`), its topics (:mod:`.topics`), the consumer
and recovery fixes (:mod:`.consumer`, :mod:`.recovery`), batched record output (:mod:`.record_batches`),
the delivery guard and the outbox of unproven outputs (:mod:`.delivery`, :mod:`.outbox`), stream batches
that finish before a stop (:mod:`.cancel_safe`), the graceful shutdown (:mod:`.shutdown`), topic followers
(:mod:`.follow`, :mod:`.model_feed`, :mod:`.topic_reader`) and the Faust metrics sensor (:mod:`.faust_sensor`)."""

__all__ = ["cancel_safe", "consumer", "delivery", "faust_app", "faust_sensor", "follow", "model_feed", "outbox",
           "record_batches", "recovery", "shutdown", "topic_reader", "topics"]  # fmt: skip
