"""The pipeline as Dramatiq actors on a Redis broker."""
