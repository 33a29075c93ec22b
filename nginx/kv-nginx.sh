#!/bin/sh
# kv-nginx: nginx in front of the api replicas of the compose deployment
# (docker-compose.yml, service "nginx"; installed as /usr/local/bin/kv-nginx).
#
# Open-source nginx 1.22 resolves the names of an upstream block once, at
# start or reload ("resolve" in upstream servers is nginx Plus only), so a
# plain `server api:7010` would keep the replicas it saw first forever.
# Instead this script:
#   1. renders $KV_NGINX_DIR/nginx.conf from the same template as the local
#      cluster (kv-controller --render-nginx: same limits, timeouts, JSON
#      error pages, X-Real-IP, /internal/ kept private, upstream keep-alive),
#      whose upstream block includes $KV_NGINX_DIR/upstream.conf;
#   2. starts nginx in the foreground (its child);
#   3. every $KV_RESOLVE_INTERVAL seconds asks Docker's DNS for every address
#      of $KV_API_HOST (`getent ahostsv4`: one A record per replica of the
#      service), keeps the new ones that answer /ready (they have the
#      topology) and, when the set changed, rewrites upstream.conf and sends
#      nginx SIGHUP: a graceful reload (new workers take the new upstream,
#      old ones finish their requests and close their keep-alive
#      connections), so `docker compose up -d --scale api=N` is picked up
#      within about a second without a restart (an empty answer counts only
#      the third time in a row: a DNS hiccup must not empty the upstream).
#      A replica being scaled away answers /ready 503 for
#      API_SHUTDOWN_DELAY_MS while it still serves (and closes every
#      connection it answers on): it is dropped in that time, so nginx never
#      sends a request on a connection to a container that is gone. One that
#      stops before the next round anyway is skipped by nginx itself
#      (connect error: the next upstream, proxy_next_upstream error).
#   4. in the same round looks up the controller's name ($KV_CONTROLLER, for
#      /ui/): nginx resolved it at start, and a controller started again
#      elsewhere (a new Swarm task) has another address; when the address
#      changed it reloads nginx the same way.
# SIGTERM or SIGINT stop nginx gracefully (SIGQUIT) and the script with it;
# if nginx dies the script exits with its status (the restart policy
# starts the container again).
#
# Needs: sh, getent, sort, sleep, mv, curl, nginx, kv-controller.
set -u

dir=${KV_NGINX_DIR:-/tmp/kv-nginx}
api_host=${KV_API_HOST:-api}
ctl_host=${KV_CONTROLLER:-http://controller:7000}
ctl_host=${ctl_host#*://}
ctl_host=${ctl_host%%[:/]*}
api_port=${KV_API_PORT:-7010}
interval=${KV_RESOLVE_INTERVAL:-1}

log() { echo "kv-nginx: $*" >&2; }
# The lines of $1 on one line ("none" when empty).
# shellcheck disable=SC2086
words() { set -- $1; echo "${*:-none}"; }

# The addresses of the name $1, one per line, sorted (DNS answers come
# shuffled).
# A name that does not resolve (no replica) would otherwise wait for the
# resolver's default 2 x 5 s; the name is tried as is before any search
# domain (ndots:0).
resolve() {
    RES_OPTIONS="ndots:0 timeout:1 attempts:1" getent ahostsv4 "$1" \
        2>/dev/null |
        while read -r ip kind _; do
            [ "$kind" = STREAM ] && echo "$ip"
        done | sort -u
}

# Of the addresses in $1, those already in the upstream and the new ones
# that answer /ready (they have the topology): a replica that has just
# started is added once it can serve, not before.
ready_only() {
    for ip in $1; do
        code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' \
                   "http://$ip:$api_port/ready" 2>/dev/null)
        case " $(words "$current") " in
        # a replica in use stays unless it says it is stopping (503: kv-api
        # drains for API_SHUTDOWN_DELAY_MS after SIGTERM); a slow answer
        # does not drop it
        *" $ip "*) [ "$code" = 503 ] || echo "$ip" ;;
        # a new one only once it is ready
        *) [ "$code" = 200 ] && echo "$ip" ;;
        esac
    done
}

# Rewrite upstream.conf for the addresses in $1 (newline separated).
write_upstream() {
    if [ -z "$1" ]; then
        echo "server 127.0.0.1:9 down; # no api replica resolves yet" \
            > "$dir/upstream.conf.new"
    else
        for ip in $1; do
            echo "server $ip:$api_port max_fails=1 fail_timeout=1s;"
        done > "$dir/upstream.conf.new"
    fi
    mv -f "$dir/upstream.conf.new" "$dir/upstream.conf"
}

kv-controller --render-nginx "$dir" || exit 1
current=
current=$(ready_only "$(resolve "$api_host")")
ctl=$(resolve "$ctl_host")
write_upstream "$current"
log "api upstream: $(words "$current") (port $api_port)"

nginx -p "$dir/" -c "$dir/nginx.conf" -e stderr &
pid=$!
stopping=0
empty=0
trap 'stopping=1; kill -QUIT "$pid" 2>/dev/null' TERM INT

while [ "$stopping" = 0 ] && kill -0 "$pid" 2>/dev/null; do
    sleep "$interval" &
    wait $! 2>/dev/null
    [ "$stopping" = 0 ] || break
    ctl_now=$(resolve "$ctl_host")
    if [ -n "$ctl_now" ] && [ "$ctl_now" != "$ctl" ]; then
        if kill -HUP "$pid" 2>/dev/null; then
            log "controller $ctl_host: $(words "$ctl_now") (was: $(words "$ctl")); reloaded"
        fi
        ctl=$ctl_now
    fi
    now=$(ready_only "$(resolve "$api_host")")
    # No answer at all: the service scaled to 0, or a DNS hiccup. Only a
    # third empty answer in a row empties the upstream.
    if [ -z "$now" ] && [ -n "$current" ]; then
        empty=$((empty + 1))
        [ "$empty" -ge 3 ] || continue
    fi
    empty=0
    if [ "$now" != "$current" ]; then
        write_upstream "$now"
        if kill -HUP "$pid" 2>/dev/null; then
            log "api upstream: $(words "$now") (was: $(words "$current")); reloaded"
        fi
        current=$now
    fi
done
wait "$pid"
status=$?
log "nginx exited ($status)"
exit "$status"
