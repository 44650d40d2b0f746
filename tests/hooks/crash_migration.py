"""Run one live migration and ``kill -9`` this process right after step ``--at``.

Used by the crash tests as a subprocess: the kernel ends it at once (no ``finally``,
no ``atexit``), as a node failure or OOM kill would.
"""

from __future__ import annotations

import argparse
import os
import signal

from hooks.actions import MigratePod
from hooks.config import KubernetesConfig
from hooks.kubernetes.client import KubeApi
from hooks.kubernetes.migration import PodMigrator, Timeouts


def main() -> None:
    """Parse, migrate, die at the step."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--pod", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--at", required=True)
    args = parser.parse_args()

    def die(step: str) -> None:
        if step == args.at:
            os.kill(os.getpid(), signal.SIGKILL)

    api = KubeApi.from_config(KubernetesConfig(kubeconfig=args.kubeconfig), os.environ)
    migrator = PodMigrator(api, Timeouts(ready=10, handover=10, watch_chunk=2), die)
    migrator.migrate(MigratePod(args.namespace, args.pod, args.node))


if __name__ == "__main__":
    main()
