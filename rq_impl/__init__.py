"""The pipeline as RQ jobs on Redis (JSON serializer only)."""
