#!/usr/bin/env bash
# System packages the test suite runs for real: Prometheus (hooks' adapters and the
# end-to-end loop scrape a real server on 127.0.0.1) and docker-compose v1 (offline
# validation of the compose file; no container engine runs here).
# Idempotent: installs only what is missing; needs root (CI runs as root) or sudo.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
