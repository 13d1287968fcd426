"""The PyFlink job and its shells around the pure operators (see ``docs/stream.md``)."""

from stream.preload import in_embedded_python, preload

#: The operator graph's version. Every operator has a stable ``uid``, so a checkpoint restores
#: into a changed program as long as the uids and their state layouts stay; bump this when they
#: do not (a removed or renamed uid, a state codec that cannot read the old values), so that
#: runs keeping one checkpoint directory per version (``recs demo``) start fresh instead of
#: failing to restore.
TOPOLOGY_VERSION = 3

# Inside the JVM (thread mode) the model stack must first be imported on a thread of its own:
# see stream/preload.py. Every operator module is under this package, so this runs first.
if in_embedded_python():
    preload()
