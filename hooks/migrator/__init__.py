"""``python -m hooks.migrator``: the Python counterpart of REACH's pod-migrator."""
