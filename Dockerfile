# One image for every Airflow component and the MLflow server (see docker-compose.yaml).
#   docker build -t shop-reco:latest .                       # CPU build of torch (the default)
#   docker build -t shop-reco:gpu \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .   # CUDA build, for the GPU worker
# Only torch changes between the two: ALS stays on CPU either way (the PyPI `implicit` wheel is CPU-only).
FROM python:3.11-slim

# the PyTorch wheel index torch==2.13.0 comes from: the CPU builds by default, a CUDA one for the GPU worker
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# the OpenMP runtime (implicit's ALS, torch's CPU kernels)
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/shop-reco
COPY requirements.txt constraints.txt pyproject.toml ./
# torch first, from its own index (requirements.txt pins the same version, which the build satisfies);
# then the pinned requirements (Airflow with the Celery provider, psycopg2, redis, MLflow, ...)
RUN pip install torch==2.13.0 --index-url "${TORCH_INDEX_URL}" \
 && pip install -r requirements.txt -c constraints.txt \
 && pip check

COPY ml ./ml
COPY dags ./dags
COPY plugins ./plugins
COPY expectations ./expectations
COPY data ./data
# editable: ml.config.PROJECT_ROOT must stay /opt/shop-reco (the bundled data and the suites live there)
RUN pip install --no-deps -e .

# a non-root user; the code stays root-owned (read-only for it). State lives in /var/lib/shop-reco, the
# volume docker-compose.yaml shares between services: a new named volume takes this folder's owner.
RUN useradd --create-home --uid 50000 --gid 0 reco \
 && mkdir -p /var/lib/shop-reco \
 && chown reco:0 /var/lib/shop-reco
USER reco
ENV RECO_PATHS__HOME=/var/lib/shop-reco
