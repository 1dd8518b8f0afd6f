"""The benchmark harness: both Redis implementations against the seed's Celery/RabbitMQ setup."""
