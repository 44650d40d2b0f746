# syntax=docker/dockerfile:1.7
# One image for every role: SuperLink, SuperNode (region from $REGION), warm ClientApp
# worker, run submitter, experiment runner, policy server, migrator. The first argument
# names the role (scripts/entrypoint.py); docker-compose.yaml and deploy/k8s use it.
#
#   docker build -t federated-rl-multicloud .
#   docker run --rm --read-only -v frl-state:/var/lib/frl federated-rl-multicloud serve --help
#
# Expected size: about 2.0 GB uncompressed: python:3.11-slim ~0.13 GB plus a runtime
# venv of 1.84 GB (torch CPU 0.76, ray 0.22, llvmlite 0.18, kubernetes 0.12, the other
# 116 packages 0.56), the sum of the installed files of every runtime dependency as
# `python -m scripts.image_size` counts them in a venv with the same wheels.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- requirements
# The runtime dependencies, extracted from pyproject.toml in a stage of their own: the
# builder copies only this list, so edits elsewhere in pyproject.toml (tool settings,
# Flower's run config) keep the dependency layer cached.
FROM ${PYTHON_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt

# ---------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# CPU wheels of torch come from PyTorch's own index (PyPI's torch pulls CUDA, ~3 GB
# more). A build argument, so a mirror or a local wheel house can stand in.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

# 1. torch first: everything that depends on it later finds the CPU build installed.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# 2. the dependencies: cached while their list is unchanged, whatever the code does.
WORKDIR /src
COPY --from=requirements /src/requirements.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r requirements.txt

# 3. the project (no dependencies left to resolve) and its source tree: `flwr run`
#    packs the apps from /app, the demo's cluster folders live there too.
COPY . /app
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps /app \
    && python -m compileall -q /app/fl_clients /app/fl_server /app/scripts \
    && rm -rf /app/build /app/*.egg-info

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ARG UID=10001
ARG GID=10001

# A numeric, unprivileged user (Kubernetes checks runAsNonRoot against the number);
# /var/lib/frl is the only writable path a process needs (mount a volume, emptyDir or
# tmpfs there); /data holds shared run folders and checkpoints, /secrets certificates
# and keys (volumes mounted there start owned by this user).
RUN groupadd --system --gid "${GID}" frl \
    && useradd --system --uid "${UID}" --gid "${GID}" --no-create-home \
       --home-dir /var/lib/frl --shell /usr/sbin/nologin frl \
    && mkdir -p /var/lib/frl /data /secrets \
    && chown "${UID}:${GID}" /var/lib/frl /data /secrets

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/frl \
    FLWR_HOME=/var/lib/frl/flwr \
    NUMBA_CACHE_DIR=/var/lib/frl/numba \
    MPLCONFIGDIR=/var/lib/frl/matplotlib \
    TMPDIR=/var/lib/frl/tmp \
    FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    OMP_NUM_THREADS=1

WORKDIR /app
USER ${UID}:${GID}
VOLUME ["/var/lib/frl"]

# SuperLink 9093, SuperNode runtime API 9094 (loopback), policy server 8000/5000,
# migrator metrics 9877.
EXPOSE 9093 8000 9877

ENTRYPOINT ["python", "-m", "scripts.entrypoint"]
CMD ["--help"]
