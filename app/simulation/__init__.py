"""Incident simulation: synthetic, replay and tabletop exercises, grading, a ground-truth feed.

Pure and seeded like the engine (``random.Random`` instances only, time as a
parameter); the CLI shell is ``app/cli/simulate.py``. One concept per module:

- ``catalog``: ``policy/simulation.yml`` (archetypes, rubric, noise, grading, stream);
- ``models``: the simulated incident and the answer key;
- ``trajectory``, ``logs``, ``noise``, ``lifecycle``, ``severity``: the parts of
  an incident; ``generator`` composes them (:func:`generator.generate_incident`);
- ``exercise``: ``exercise.md`` and ``answer_key.json``; ``replay``: the same
  from a real incident, with ``pseudonyms`` stripping identifying details;
- ``answers``, ``grading``, ``debrief``: scoring a participant's ``answers.yml``;
- ``feed``: the synthetic stream with planted patterns
  (:func:`feed.generate_stream`); ``publish``: its thin Kafka shell.
"""
