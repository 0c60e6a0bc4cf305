# The image every trainbed pod runs: worker, controller, reader pod and TensorBoard.
# No `# syntax=` line: BuildKit would fetch that frontend from a registry. The classic builder and
# buildah build this file as it is; scripts/image builds a test image from its steps with no
# registry at all (docs/real-node.md).
#
#   docker build -t trainbed:0.1.0 .                                    # CPU torch (default)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 \
#                -t trainbed:0.1.0-cu124 .                              # CUDA torch
#
# The pods run as uid/gid 1000 with a read-only root filesystem (charts/trainbed, manifests.py),
# so nothing here writes outside /tmp at run time.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# Where torch and torchvision come from: the CPU wheels keep the image small; a CUDA index
# (https://download.pytorch.org/whl/cu124, ...) gives the GPU build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/trainbed
ENV PATH=/opt/trainbed/bin:$PATH
# torch first, from its own index, so `pip install .` finds it satisfied and the layer caches.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch>=2.2" "torchvision>=0.17"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY trainbed ./trainbed
COPY orchestrator ./orchestrator
COPY worker ./worker
COPY analysis ./analysis
RUN pip install . && pip check

FROM ${PYTHON_IMAGE}
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
LABEL org.opencontainers.image.title="trainbed" \
      org.opencontainers.image.description="Kubernetes-native testbed for distributed-training experiments" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.trainbed.torch-index="${TORCH_INDEX_URL}"
RUN groupadd --gid 1000 trainbed \
 && useradd --uid 1000 --gid 1000 --home-dir /home/trainbed --create-home --shell /usr/sbin/nologin trainbed \
 && mkdir -p /results \
 && chown 1000:1000 /results
COPY --from=build /opt/trainbed /opt/trainbed
ENV PATH=/opt/trainbed/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    TRAINBED_DATA=/results/data
WORKDIR /home/trainbed
USER 1000:1000
ENTRYPOINT ["trainbed"]
CMD ["--help"]
