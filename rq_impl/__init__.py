"""The pipeline as RQ jobs on Redis (JSON serializer only)."""

from shared.versions import require

# Before any module of ours imports RQ internals: a release we do not test stops here, in one line.
require("rq")
