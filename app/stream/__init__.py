"""The stream worker: the engine kept live over Kafka, one cycle of records at a time.

The shell around :mod:`app.intel`: it reads the input topics, folds every record
into a replica of the engine, and sends what the engine renders; the rules are
the engine's, so the stream and ``incident-intel tool`` agree
(docs/architecture.md). Modules, roughly in the order a record meets them:

==============================  ===============================================================
module                          its one job
==============================  ===============================================================
:mod:`~app.stream.settings`     the worker's ``INTEL_*`` settings, checked at start-up
:mod:`~app.stream.worker`       composition: builds every part and hands each its collaborators
:mod:`~app.stream.app`          the Faust app: group membership, leader, timers, web server
:mod:`~app.stream.group`        which input partitions this worker owns, and its commits
:mod:`~app.stream.reader`       every partition the data path needs, read once, in batches
:mod:`~app.stream.pipeline`     the data path's loop: read, apply, send, flush, commit
:mod:`~app.stream.cycle`        one cycle, pure: a batch of records in, the records to send out
:mod:`~app.stream.inputs`       one consumer record to an event, or to a dead letter
:mod:`~app.stream.replica`      the live engine every worker keeps, and the reads it answers
:mod:`~app.stream.emission`     what the owner of an input partition emits for its records
:mod:`~app.stream.publisher`    keyed outputs and follow-ups, one writer per key
:mod:`~app.stream.emitter`      every produced record's headers and send
:mod:`~app.stream.checkpoint`   the order in which a writer's work becomes final
:mod:`~app.stream.digest_timer` the weekly digest, on the leader, once per week
:mod:`~app.stream.health`       broker reachable, replica caught up, partitions moving
:mod:`~app.stream.progress`     whether every input record is committed
:mod:`~app.stream.errorlog`     repeated errors logged once per interval, with a count
:mod:`~app.stream.testing`      the data path run over lists of records, without a broker
==============================  ===============================================================
"""
