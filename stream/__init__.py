"""The PyFlink job and its shells around the pure operators (see ``docs/architecture.md``)."""

#: The operator graph's version. Every operator has a stable ``uid``, so a checkpoint restores
#: into a changed program as long as the uids and their state layouts stay; bump this when they
#: do not (a removed or renamed uid, a state codec that cannot read the old values), so that
#: runs keeping one checkpoint directory per version (``recs demo``) start fresh instead of
#: failing to restore.
TOPOLOGY_VERSION = 2
