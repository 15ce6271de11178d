"""The actions queue's hold: while Keap cannot serve, the queue is paused (not drained into the DLQ) and resumed
when a probe says Keap serves again.

``policy`` (pure decisions: why, until when, when to probe), ``store`` and ``table`` (the ``HOLD#``/``QUOTA#``
items), ``switch`` (the SQS event source mapping), ``holding`` (state and switch changed together, as a
reconciler) and ``check`` (the minute check that probes and resumes).
"""
