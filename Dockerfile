# syntax=docker/dockerfile:1
# Two targets from one recipe:
#   cpu  — synthesis workers, dispatcher, flower, CPU trainer (torch CPU wheel)
#   gpu  — the trainer with vLLM rollouts (CUDA torch from vllm's own pins: vllm 0.33.0 pins
#          torch==2.14.0 and transformers>=5.16.1,<5.21, inside pyproject's ranges — read from
#          its wheel's METADATA; compose's synth-llm runs the same vllm version)
# Build: docker build --target cpu -t rods:cpu .   |   docker build --target gpu -t rods:gpu .

FROM python:3.11-slim AS base
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=0
RUN apt-get update && apt-get install -y --no-install-recommends redis-tools curl \
    && rm -rf /var/lib/apt/lists/*
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
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -c constraints-cpu.txt . flower \
    && pip install --no-deps bfcl-eval==2026.3.23 mpmath
ENTRYPOINT ["rods"]

FROM nvidia/cuda:12.8.1-runtime-ubuntu22.04 AS gpu
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY --from=base /app /app
RUN pip install '.[gpu,trl]' 'vllm==0.33.0' deepspeed && pip install --no-deps bfcl-eval==2026.3.23 mpmath
ENTRYPOINT ["rods"]
