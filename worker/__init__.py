"""The worker side: Celery task, device choice, model loading, batching and metrics."""
