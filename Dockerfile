# One image for every Airflow component and the MLflow server (see docker-compose.yaml).
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /opt/shop-reco
COPY requirements.txt constraints.txt pyproject.toml ./
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -r requirements.txt -c constraints.txt \
 && pip install --no-cache-dir "apache-airflow-providers-celery" "psycopg2-binary" "redis"
COPY ml ./ml
COPY dags ./dags
COPY plugins ./plugins
COPY expectations ./expectations
COPY data ./data
RUN pip install --no-cache-dir --no-deps -e .
