"""Hydra configuration: YAML groups and the typed schema that validates them."""
