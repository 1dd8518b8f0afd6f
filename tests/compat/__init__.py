"""``make compat``: Dramatiq's and RQ's own test suites run on stock and on our broker and worker.

``run`` is the entry point (``python -m tests.compat.run``); ``suites`` says which of their test
files run and why the others do not; ``sdists`` fetches them; ``plugins/`` holds what runs inside
their pytest (the swap, the outcome recorder, the Redis redirect); ``outcomes`` and ``report``
compare the two sides against ``expected_differences.toml``.

Nothing here is imported by their test processes as ``tests.…``: their suites have a ``tests``
package of their own, so the plugins are loaded as top-level modules from ``plugins/``.
"""
