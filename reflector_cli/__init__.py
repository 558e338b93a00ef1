"""reflector: multitrack meeting recordings in, transcripts and summaries out."""

from reflector_cli.core.blas import one_thread_unless_set as _one_blas_thread
from reflector_cli.core.lifeline import bind_if_spawned as _bind_if_spawned

# A multiprocessing child of a worker binds to it here, at its first import of this package:
# earlier than any hook the child's own code could offer (see lifeline.bind_if_spawned).
_bind_if_spawned()
# Before anything in the package imports numpy.
_one_blas_thread()
