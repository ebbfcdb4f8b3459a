#!/usr/bin/env bash
# bench/ab.sh - A/B of two strata binaries on one shared case, alternating, cold root each.
#
# usage: bench/ab.sh OLD_BIN NEW_BIN [CASE_DIR] [PAIRS]
#   CASE_DIR default ../shared/bench/cases/manyrun (case f); PAIRS default 4.
#   Needs ../shared/bench/peers-up.sh to have run once (base image archive and contexts under
#   $BENCH_STATE, default /tmp/bench). Each run: a new root, `strata load` of the shared base
#   tagged as the cases' BASE (untimed), sync, then the timed
#   `strata build --progress plain --network none -f CASE_DIR/Dockerfile CTX`.
#   Prints one line per run: "old|new PAIR MS". Roots are removed at the end.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OLD=${1:?old binary}; NEW=${2:?new binary}
CASE=${3:-$HERE/../../shared/bench/cases/manyrun}
PAIRS=${4:-4}
STATE=${BENCH_STATE:-/tmp/bench}
BASE_REF=${BASE_REF:-127.0.0.1:5000/busybox:latest}
CTX=$STATE/ctx-empty
[[ $(basename "$CASE") == app ]] && CTX=$STATE/ctx-app
ROOTS=$(mktemp -d /tmp/strata-ab.XXXXXX)
trap 'rm -rf "$ROOTS"' EXIT
for ((i = 1; i <= PAIRS; i++)); do
  for side in old new; do
    bin=$OLD; [[ $side == new ]] && bin=$NEW
    root=$ROOTS/$side-$i
    "$bin" --root "$root" load -i "$STATE/base/busybox-docker.tar" >/dev/null &&
      "$bin" --root "$root" tag busybox:latest "$BASE_REF" || exit 1
    sync; sleep 1
    t0=$(date +%s%N)
    "$bin" --root "$root" build --progress plain --network none -f "$CASE/Dockerfile" -t ab "$CTX" >/dev/null 2>&1 || echo "$side $i failed"
    t1=$(date +%s%N)
    echo "$side $i $(( (t1 - t0) / 1000000 )) ms"
  done
done
