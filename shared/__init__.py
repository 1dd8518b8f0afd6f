"""Backend-neutral core of the pipeline: task logic, routing, result store, settings, backends."""
