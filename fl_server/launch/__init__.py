"""Launching federations: the run folder, a loopback Deployment Engine, the summary.

``scripts/federate.py`` is the command line over this package; the Simulation Engine
(both apps in one process) is started there, the one place client and server code
meet.
"""

from __future__ import annotations

from fl_server.launch.deployment import (
    CONNECTION,
    PROJECT_ROOT,
    Deployment,
    check_app,
    run_deployment_engine,
)
from fl_server.launch.processes import FLWR_ENV, Managed, flower_env, free_port
from fl_server.launch.run_folder import prepare
from fl_server.launch.summary import summary

__all__ = [
    "CONNECTION",
    "FLWR_ENV",
    "PROJECT_ROOT",
    "Deployment",
    "Managed",
    "check_app",
    "flower_env",
    "free_port",
    "prepare",
    "run_deployment_engine",
    "summary",
]
