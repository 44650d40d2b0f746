"""Integration hooks: act on Kubernetes, OpenStack and Prometheus, dry-run by default.

Every hook decides purely (``plan(state, decision) -> list[Action]``) and acts
through one actuator chosen at start-up (:mod:`hooks.mode`). The policy server is
reached over HTTP only; nothing here imports ``serving`` or the training code.
"""
