# One image for every role of the compose deployment (docker-compose.yml):
# kv-store, kv-queue, kv-api, kv-controller, kvctl, and nginx run by
# kv-nginx (nginx/kv-nginx.sh). The service's command picks the role.
#
#   docker compose up --build        builds it as ${KV_IMAGE:-kv:latest}
#
# tests/docker/mkimage.py assembles the same layout from the files of the
# machine that ran `make` (for `make test-docker` where no registry is
# reachable): keep the two in step. Layout:
#   /usr/local/bin/          the binaries, kv-nginx
#   /usr/local/share/kv/     nginx.conf.template, lab/cloudcart/
#   /data                    owned by kv: the volume of each stateful service
#   /secret                  owned by kv, 0700: the cluster token's volume
#   user kv (10001), home /home/kv

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev make binutils \
        libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev libxxhash-dev \
        liblmdb-dev libcmocka-dev node-llhttp \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# scripts/deps.sh (the stamp's rule) also wants what the tests and benches
# use (nginx, wrk, gnuplot, python3, curl), which a build does not: the
# packages above are what compiling needs, so the stamp counts as made (-o).
RUN make -o build/release/.deps-ok all \
 && strip build/release/bin/*

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmicrohttpd12 libcurl4 libcjson1 libxxhash0 liblmdb0 \
        nginx-light curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 kv \
 && useradd --uid 10001 --gid kv --home-dir /home/kv --create-home \
        --shell /bin/sh kv \
 && mkdir -p /data /secret \
 && chown kv:kv /data /secret \
 && chmod 700 /secret
COPY --from=build /src/build/release/bin/ /usr/local/bin/
COPY nginx/kv-nginx.sh /usr/local/bin/kv-nginx
COPY nginx/nginx.conf.template /usr/local/share/kv/nginx.conf.template
COPY lab/cloudcart/ /usr/local/share/kv/lab/cloudcart/
# Servers listen on every address of the container; data goes to /data.
ENV KV_BIND=0.0.0.0 \
    KV_DATA_DIR=/data \
    KV_HEALTH_URL=http://127.0.0.1:7000/health
USER kv
WORKDIR /home/kv
# KV_HEALTH_URL names the role's /health (default: the controller's);
# docker-compose.yml states each service's check explicitly.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS -m 2 -o /dev/null "$KV_HEALTH_URL" || exit 1
CMD ["kv-controller", "--help"]
