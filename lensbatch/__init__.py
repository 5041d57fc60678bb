"""Code shared by the scheduler and the workers: settings, schema, job options, queue.

Nothing in this package imports torch or transformer_lens, so the CLI starts fast.
"""

__version__ = "0.1.0"
