"""The scheduler side: CLI, corpus reading, job planning, enqueueing and queries.

Nothing here imports torch at start-up; `run`, `inspect` and `worker` import the
worker package when they are called.
"""
