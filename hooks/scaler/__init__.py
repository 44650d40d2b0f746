"""``python -m hooks.scaler``: pool replicas from the two-tier scheduler's decisions."""
