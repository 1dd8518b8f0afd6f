"""The pipeline as Dramatiq actors on a Redis broker."""

from shared.versions import require

# Before any module of ours imports Dramatiq internals: a release we do not test stops here, in one line.
require("dramatiq")
