"""A worker process: the Celery task that runs attempts, and its background duties."""
