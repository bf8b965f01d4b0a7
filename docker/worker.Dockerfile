# syntax=docker/dockerfile:1
# vrft GPU worker image: `vrft-worker` (Celery on the `gpu` queue + the reconciler).
#
#   docker build -f docker/worker.Dockerfile -t vrft/worker .   (from the repository root)
#   docker build -f docker/worker.Dockerfile --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 ...
#
# torch comes FIRST, pinned, from the CUDA wheel index (as scripts/setup.sh pins torch==2.13.0 before the
# project): the `worker` extra only asks for a range, which the pinned build already satisfies, so pip
# keeps it. The CUDA torch wheels bring their own CUDA runtime, cuBLAS and cuDNN (nvidia-* wheels), so
# the base only needs the NVIDIA container runtime wiring (NVIDIA_VISIBLE_DEVICES,
# NVIDIA_DRIVER_CAPABILITIES) that the nvidia/cuda images set; a `-cudnn-runtime-` base would ship a
# second copy of those libraries. Pick TORCH_INDEX_URL for a CUDA version your hosts' driver supports.
ARG CUDA_BASE_IMAGE=nvidia/cuda:12.8.1-base-ubuntu22.04
FROM ${CUDA_BASE_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    VRFT_DATA_DIR=/var/lib/vrft \
    VRFT_MODEL_CACHE=/models/vrft \
    HF_HOME=/models/hf

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv \
    && pip install --upgrade pip

RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/vrft vrft \
    && mkdir -p /var/lib/vrft /models/vrft /models/hf \
    && chown -R vrft:vrft /var/lib/vrft /models

WORKDIR /opt/vrft
# Same layout as the API image: alembic.ini and migrations/ next to app/ (editable install).
COPY pyproject.toml alembic.ini ./
COPY migrations ./migrations
COPY workers ./workers
COPY app ./app
RUN pip install -e ".[worker]" \
    && python -c "import torch, sys; v = torch.__version__.split('+')[0]; sys.exit(v != '${TORCH_VERSION}' and f'torch {torch.__version__} replaced the pinned ${TORCH_VERSION}')"

USER vrft
# One worker on whatever GPU(s) the container sees; `vrft-worker --gpus 0,1,2,3`: a host agent owning them.
CMD ["vrft-worker"]
