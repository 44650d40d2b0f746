"""Labels and annotations the migrator writes: the only memory a crash leaves.

Everything needed to finish or undo a migration after ``kill -9`` is on the pods
themselves, so a restarted migrator reconciles from one labelled list.
"""

from __future__ import annotations

PREFIX = "hooks.frl.dev"
MIGRATION = f"{PREFIX}/migration"
"""Label: the migration id, on the source and the replacement while in flight."""
ROLE = f"{PREFIX}/role"
"""Label: ``source`` or ``replacement``."""
REPLICASET = f"{PREFIX}/replicaset"
"""Label: the ReplicaSet being migrated (one migration per workload)."""
ORIGINAL_HASH = f"{PREFIX}/original-hash"
"""Annotation on the replacement: the ``pod-template-hash`` it gets at hand-over."""
SOURCE_UID = f"{PREFIX}/source-uid"
"""Annotation on the replacement: the UID of the pod it replaces."""
TARGET_NODE = f"{PREFIX}/target-node"
"""Annotation on the replacement: the node it was pinned to."""
MIGRATED_FROM = f"{PREFIX}/migrated-from"
"""Annotation kept on a finished replacement: its hostname pin is ours, so the state
ignores it when listing where the pod may go next."""
ORIGINAL_COST = f"{PREFIX}/original-deletion-cost"
"""Annotation on the source: its deletion cost before the hand-over (``""``: unset)."""
CORDONED_BY = f"{PREFIX}/cordoned-by"
"""Annotation on nodes the REACH protocol cordoned (only those are uncordoned)."""
ORIGINAL_REPLICAS = f"{PREFIX}/original-replicas"
"""Annotation on a Deployment the REACH protocol scaled up."""

HASH_LABEL = "pod-template-hash"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SHED_COST = "-2147483648"
"""The lowest int32: the ReplicaSet sheds this pod first among Ready peers."""
HOSTNAME = "kubernetes.io/hostname"
HASH_SUFFIX = "-mbb"
"""Appended to the replacement's hash so the ReplicaSet does not adopt it early."""
