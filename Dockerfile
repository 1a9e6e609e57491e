# Two targets from one recipe:
#   cpu  — synthesis workers, dispatcher, flower, the CPU trainer, the llama.cpp synthesizer
#          server (torch CPU wheel)
#   gpu  — the trainer with vLLM rollouts (CUDA torch from vllm's own pins: vllm 0.33.0 pins
#          torch==2.14.0 and transformers>=5.16.1,<5.21, inside pyproject's ranges — read from
#          its wheel's METADATA; compose's synth-llm runs the same vllm version)
# Build: docker build --target cpu -t rods:cpu .   |   docker build --target gpu -t rods:gpu .
#
# Build arguments, for hosts with no image registry or no PyTorch index (a normal build needs
# none of them; scripts/test_compose.sh sets them on a machine that reaches only PyPI and Debian):
#   BASE_IMAGE       base of the cpu image: any Debian-based image with python3 (>= 3.11) and
#                    its venv module (default python:3.11-slim)
#   CUDA_IMAGE       base of the gpu image
#   TORCH_INDEX_URL  the index the CPU torch wheel comes from; empty: no index, the wheel from
#   TORCH_FIND_LINKS a pip --find-links location with a torch-2.13.0 CPU wheel (a URL: builds
#                    run with `--network host`, so a server on the builder's loopback works)
#   PIP_CA_URL       a CA bundle that pip trusts during the build (for a host whose egress
#                    re-signs TLS); it stays out of the image's layers
# The images run as the unprivileged user `rods` (uid 10001); /runs (the `runs` volume) and
# its Hugging Face cache are its own.
ARG BASE_IMAGE=python:3.11-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu22.04

FROM ${BASE_IMAGE} AS base
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=0 PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends redis-tools curl \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --create-home --uid 10001 rods \
    && install -d -o rods -g rods /runs /home/rods/.cache/huggingface
WORKDIR /app
COPY pyproject.toml README.md constraints-cpu.txt ./
COPY rods ./rods
COPY graphs ./graphs
COPY trainer ./trainer
COPY services ./services
COPY cli ./cli
COPY report ./report
COPY configs ./configs

FROM base AS cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_FIND_LINKS=
ARG PIP_CA_URL=
# torch alone first (from its CPU index, or with no index from TORCH_FIND_LINKS), then the
# project: pip resolves torch's own dependencies from PyPI then. The CA bundle is fetched,
# used and deleted in this one step: it is in no layer of the image.
RUN if [ -n "$PIP_CA_URL" ]; then curl -fsS "$PIP_CA_URL" -o /tmp/pip-ca.crt && export PIP_CERT=/tmp/pip-ca.crt; fi \
    && if [ -n "$TORCH_INDEX_URL" ]; then pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0; \
    else pip install --no-index --no-deps --find-links "$TORCH_FIND_LINKS" torch==2.13.0; fi \
    && pip install -c constraints-cpu.txt '.[models,serve]' flower==2.0.1 \
    && pip install --no-deps bfcl-eval==2026.3.23 mpmath \
    && rm -f /tmp/pip-ca.crt
USER rods
ENTRYPOINT ["rods"]

FROM ${CUDA_IMAGE} AS gpu
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv \
    && useradd --create-home --uid 10001 rods \
    && install -d -o rods -g rods /runs /home/rods/.cache/huggingface
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY --from=base /app /app
RUN pip install '.[gpu,trl]' 'vllm==0.33.0' deepspeed && pip install --no-deps bfcl-eval==2026.3.23 mpmath
USER rods
ENTRYPOINT ["rods"]
