#!/usr/bin/env bash
# Makes sure everything the test suite drives for real is on this machine and running:
# Debian's Celery 5.2.6 (with redis-py), Prometheus and Alertmanager, RabbitMQ and Redis.
# It installs what is missing when it can (root + apt) and otherwise stops with a message that
# names what is missing: a test that silently skipped would prove nothing.
set -euo pipefail

say() { printf 'prereqs: %s\n' "$*" >&2; }
die() { say "MISSING: $*"; exit 1; }

CELERY_PY=${CELERY_PYTHON:-/usr/bin/python3}
need_apt=()
"$CELERY_PY" -c 'import celery, redis' 2>/dev/null || need_apt+=(python3-celery python3-redis)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
# promtool (Debian ships it with prometheus) lints the real /metrics output.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v alertmanager >/dev/null 2>&1 || command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
# The operator page's browser test drives Debian's Chromium (playwright-core downloads no browser).
[[ -x ${CHROMIUM_PATH:-/usr/bin/chromium} ]] || need_apt+=(chromium)
# `docker-compose config` validates docker-compose.yml without a Docker engine.
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
# The broker TLS tests make a CA with openssl and put stunnel in front of RabbitMQ (Redis speaks
# TLS itself: Debian's redis-server is built with it).
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || need_apt+=(stunnel4)
# deploy/kubernetes is built with kubectl's kustomize, and the test Kubernetes API server must be
# accepted by a real kubectl (Debian's kubernetes-client).
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)

if ((${#need_apt[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need_apt[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # Debian's prometheus packages try to start services through systemd/invoke-rc.d; the tests
    # start their own instances, so a policy-rc.d refusal keeps the install from failing here.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; fi
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    die "${need_apt[*]} (run as root with apt-get, or install them: apt-get install -y ${need_apt[*]})"
  fi
fi
"$CELERY_PY" -c 'import celery, redis, sys; sys.exit(0 if celery.__version__.startswith("5.") else 1)' \
  || die "Celery 5.x for $CELERY_PY (apt-get install -y python3-celery python3-redis)"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 "$2"); do port_open "$1" && return 0; sleep 1; done; return 1; }

if ! port_open 6379; then
  say "Redis is down on 127.0.0.1:6379, starting it"
  command -v redis-server >/dev/null || die "redis-server (apt-get install -y redis-server)"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 20 || die "Redis did not come up on 127.0.0.1:6379"
fi

if ! port_open 5672; then
  say "RabbitMQ is down on 127.0.0.1:5672, starting it"
  command -v rabbitmq-server >/dev/null || die "rabbitmq-server (apt-get install -y rabbitmq-server)"
  rabbitmq-server -detached || true
  wait_port 5672 90 || die "RabbitMQ did not come up on 127.0.0.1:5672"
fi
command -v rabbitmqctl >/dev/null || die "rabbitmqctl (the tests create their own vhosts with it)"
# /api/queues/length with broker_api reads RabbitMQ's management API, as Flower's broker_api does.
if ! port_open 15672; then
  say "enabling RabbitMQ's management plugin (port 15672)"
  rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null || die "rabbitmq_management plugin (rabbitmq-plugins enable rabbitmq_management)"
  wait_port 15672 60 || die "RabbitMQ's management API did not come up on 127.0.0.1:15672"
fi
say "ok: celery $("$CELERY_PY" -c 'import celery; print(celery.__version__)'), RabbitMQ and Redis up"
