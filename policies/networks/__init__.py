"""Policy networks beyond SB3's MLP, one module each.

Each module adds its entry to ``policies.factory.NETWORKS`` (``policy.network``)
when imported; ``policies.factory`` imports them.
"""
