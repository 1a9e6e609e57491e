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
#   TORCH_INDEX_URL  the index the CPU torch wheel comes from; empty: install it from the
#                    wheels put in docker/local/ of the build context (a torch-2.13.0 wheel)
#   PIP_CA_BUNDLE    a CA bundle put in docker/local/ that pip trusts during the build (for a
#                    host whose egress re-signs TLS); the image itself keeps its own CAs
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

# The cpu image's venv is built in a stage of its own and copied: the wheels and CA bundle of
# docker/local/ stay out of the image's layers.
FROM base AS cpu-venv
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_CA_BUNDLE=
COPY docker/local /tmp/local
# torch alone first (from its CPU index, or from docker/local/ without any index), then the
# project: pip resolves torch's own dependencies from PyPI then.
RUN if [ -n "$PIP_CA_BUNDLE" ]; then export PIP_CERT="/tmp/local/$PIP_CA_BUNDLE"; fi \
    && if [ -n "$TORCH_INDEX_URL" ]; then pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0; \
    else pip install --no-index --no-deps --find-links /tmp/local torch==2.13.0; fi \
    && pip install -c constraints-cpu.txt '.[models,serve]' flower==2.0.1 \
    && pip install --no-deps bfcl-eval==2026.3.23 mpmath

FROM base AS cpu
COPY --from=cpu-venv /opt/venv /opt/venv
COPY --from=cpu-venv /app /app
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
