# A GPU training box: the same pinned Python stack, CUDA torch instead of the CPU wheel.
# Build from the repository root:
#   docker build -f docker/train.Dockerfile -t gymnast-train .
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

RUN apt-get update && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python3.11-dev build-essential cmake git libegl1 libgl1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /ws
COPY . /ws
# Same pins as the CPU machines; torch==2.13.0 comes first from the CUDA index (GPU kernels),
# so requirements.txt finds its pin already satisfied.
RUN python3.11 -m venv .venv \
    && .venv/bin/pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu128 torch==2.13.0 \
    && .venv/bin/pip install --no-cache-dir -r requirements.txt \
    && ./scripts/bootstrap.sh

ENV MUJOCO_GL=egl ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
ENTRYPOINT [".venv/bin/gymnast"]
CMD ["--help"]
