"""What an operator reads: Prometheus metrics (``/metrics``) and one log line per request and task.

``metrics``: the metric objects every app records into, and the scrape (several processes
summed through prometheus-client's multiprocess directory); ``middleware``: requests;
``tasks``: Celery task signals; ``logs``: the JSON log formatter; ``views``: ``/metrics``.
"""
