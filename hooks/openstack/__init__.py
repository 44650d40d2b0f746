"""OpenStack placement for the scheduler tier, and ``python -m hooks.openstack place``.

The library lives in :mod:`hooks.openstack.placement` and is re-exported here (the
names ``hooks.openstack`` always had); the command line is ``__main__``.
"""

from __future__ import annotations

from hooks.openstack.placement import (
    DEFAULT_ZONE,
    EXTRA_SPEC_SCOPE,
    Capacity,
    PlacementState,
    ServerPlacer,
    clouds_yaml_files,
    connect,
    find_credentials,
    placement_actuator,
    placement_capacity,
    plan_server,
    read_placement,
    translate,
)

__all__ = [
    "DEFAULT_ZONE",
    "EXTRA_SPEC_SCOPE",
    "Capacity",
    "PlacementState",
    "ServerPlacer",
    "clouds_yaml_files",
    "connect",
    "find_credentials",
    "placement_actuator",
    "placement_capacity",
    "plan_server",
    "read_placement",
    "translate",
]
