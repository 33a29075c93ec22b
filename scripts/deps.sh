#!/bin/sh
# Checks for the libraries and tools the build, the cluster and the tests need
# and installs the missing ones with apt-get (as root, or through sudo). When
# that is not possible it stops with one sentence naming what is missing.
# Then it installs the npm packages of tests/browser when they are missing or
# differ from its package-lock.json.
set -u
cd "$(dirname "$0")/.." || exit 1

missing=""
need_hdr() { # header, package
    echo "#include <$1>" | ${CC:-cc} -E -x c - >/dev/null 2>&1 || missing="$missing $2"
}
need_bin() { # command, package
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || missing="$missing $2"
}
check() {
    missing=""
    command -v ${CC:-cc} >/dev/null 2>&1 || missing="$missing gcc"
    need_bin make make
    need_hdr microhttpd.h libmicrohttpd-dev
    need_hdr curl/curl.h libcurl4-openssl-dev
    need_hdr cjson/cJSON.h libcjson-dev
    need_hdr xxhash.h libxxhash-dev
    need_hdr lmdb.h liblmdb-dev
    [ -f /usr/share/llhttp/llhttp.c ] && [ -f /usr/share/include/llhttp/llhttp.h ] || missing="$missing node-llhttp"
    printf '#include <stdarg.h>\n#include <stddef.h>\n#include <setjmp.h>\n#include <stdint.h>\n#include <cmocka.h>\n' |
        ${CC:-cc} -E -x c - >/dev/null 2>&1 || missing="$missing libcmocka-dev"
    need_bin nginx nginx-light
    need_bin wrk wrk
    need_bin strace strace
    need_bin python3 python3
    need_bin curl curl
    need_bin gnuplot gnuplot-nox
    need_bin pkg-config pkg-config
    # make fuzz: Debian's clang and its libFuzzer runtime (only a
    # Recommends of clang, which --no-install-recommends leaves out).
    need_bin clang clang
    ls "$(clang -print-runtime-dir 2>/dev/null)"/libclang_rt.fuzzer-*.a >/dev/null 2>&1 ||
        missing="$missing libclang-rt-14-dev"
    # tests/browser: Debian's Chromium (no browser download is reachable),
    # driven by puppeteer-core on node.
    need_bin chromium chromium
    need_bin node nodejs
    need_bin npm npm
}

# npm ci wipes node_modules and reinstalls, so it runs only when the copy of
# the lock it left behind differs from the lock in the tree.
npm_deps() {
    dir=tests/browser
    [ -f $dir/node_modules/puppeteer-core/package.json ] &&
        cmp -s $dir/package-lock.json $dir/node_modules/.kv-lock && return 0
    npm ci --prefix $dir --no-audit --no-fund --loglevel=error >/dev/null &&
        cp $dir/package-lock.json $dir/node_modules/.kv-lock ||
        { echo "npm ci could not install the packages of $dir (npm's error is above)." >&2; exit 1; }
}

check
[ -z "$missing" ] && { npm_deps; exit 0; }

if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "Missing packages:$missing; install them with apt-get as root (no sudo here)." >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing packages:$missing; this script installs them only with apt-get (Debian/Ubuntu)." >&2
    exit 1
fi
echo "Installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null &&
    $sudo apt-get install -y -qq --no-install-recommends build-essential $missing >/dev/null ||
    { echo "apt-get could not install:$missing." >&2; exit 1; }
check
if [ -n "$missing" ]; then
    echo "Still missing after apt-get:$missing." >&2
    exit 1
fi
npm_deps
