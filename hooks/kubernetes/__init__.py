"""Kubernetes hooks: cluster state, make-before-break migration, scaling."""
