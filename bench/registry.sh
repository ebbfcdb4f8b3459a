#!/usr/bin/env bash
# bench/registry.sh - push and pull of a 500 MB image against a local docker-registry:
# Strata side by side with skopeo, in one run, on the same image and registry.
#
# usage: bench/registry.sh [-n RUNS] [-o OUTDIR]
#   RUNS (default 3) timed runs per tool and direction, alternating tools.
#   OUTDIR default: bench/results/registry-<UTC stamp>/ (runs.csv, summary.md)
#   State (context, stores, registry storage) lives under $REGISTRY_STATE (default
#   /root/regbench). STRATA_BIN=/path/to/strata skips the release build.
#
# What it does:
#   1. Context: the first 500,000,000 bytes of regular files under /usr/lib /usr/share
#      /usr/bin (sorted by path, files over 64 MiB skipped); `FROM scratch` + `COPY data/
#      /data/`: one 500 MB layer. `strata build` stores it uncompressed.
#   2. Untimed warm-up: `strata push` to a fresh registry (gzip-compresses the layer once and
#      keeps the compressed blob), then `skopeo copy docker://… oci:LAYOUT` so skopeo has
#      the same compressed image locally.
#   3. Timed, each run against a freshly emptied registry (docker-registry restarted on
#      127.0.0.1, filesystem storage) so every byte is uploaded:
#        push: strata --root R push REG/bench/strata:N     (layer already compressed: upload)
#              skopeo copy --dest-tls-verify=false oci:LAYOUT:big docker://REG/bench/skopeo:N
#      and from a registry holding the image, into an empty destination each time:
#        pull: strata --root FRESH pull REG/bench/big:1     (verify + fsync into the store)
#              skopeo copy --src-tls-verify=false docker://REG/bench/big:1 oci:FRESHDIR:big
#   4. Wall time (date +%s%N) and CPU time (GNU time %U+%S); MB/s over the 500 MB of data
#      (the compressed layer is smaller; its size is in summary.md).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(cd "$HERE/.." && pwd)
RUNS=3
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUTDIR=""
while getopts "n:o:h" opt; do
  case $opt in
    n) RUNS=$OPTARG ;; o) OUTDIR=$OPTARG ;; *) sed -n '2,27p' "$0"; exit 2 ;;
  esac
done
STATE=${REGISTRY_STATE:-/root/regbench}
OUTDIR=${OUTDIR:-$HERE/results/registry-$STAMP}
mkdir -p "$OUTDIR" "$STATE"; OUTDIR=$(cd "$OUTDIR" && pwd)
CSV=$OUTDIR/runs.csv
TOTAL=500000000
TARGET_DIR=${CARGO_TARGET_DIR:-$MAIN/target}
STRATA=${STRATA_BIN:-$TARGET_DIR/release/strata}
SROOT=$STATE/strata-root
say() { printf '[bench/registry %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "$*"; exit 1; }

if [[ -z ${STRATA_BIN:-} ]]; then
  say "cargo build --release -p strata (target dir $TARGET_DIR)"
  (cd "$MAIN" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p strata) >&2 || die "cargo build failed"
fi
for tool in docker-registry skopeo; do command -v $tool >/dev/null || die "$tool not installed"; done

# ---------------------------------------------------------------- registry
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
REGPID=""
stop_registry() { [[ -n $REGPID ]] && kill "$REGPID" 2>/dev/null && wait "$REGPID" 2>/dev/null; REGPID=""; }
trap stop_registry EXIT
start_registry() {  # fresh (empty) storage
  stop_registry
  rm -rf "$STATE/registry"; mkdir -p "$STATE/registry/data"
  cat > "$STATE/registry/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $STATE/registry/data
http:
  addr: $REG
YML
  docker-registry serve "$STATE/registry/config.yml" >/dev/null 2>"$STATE/registry/log" &
  REGPID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://$REG/v2/" && return 0; sleep 0.1; done
  die "docker-registry did not start"
}

# ---------------------------------------------------------------- 1. context and image
CTX=$STATE/ctx
[[ -f $CTX/.complete ]] || say "making the 500 MB context from /usr"
"$HERE/usr-context.sh" "$CTX" "$TOTAL" || die "context copy failed"
say "strata build"
"$STRATA" --root "$SROOT" build --progress quiet -t regbench "$CTX" >/dev/null || die "strata build failed"

# ---------------------------------------------------------------- 2. warm-up
start_registry
say "warm-up: strata push (compresses once), skopeo copy to a local layout"
"$STRATA" --root "$SROOT" tag regbench "$REG/bench/big:1" || die "tag failed"
"$STRATA" --root "$SROOT" push -q "$REG/bench/big:1" >/dev/null || die "warm-up push failed"
LAYOUT=$STATE/layout
rm -rf "$LAYOUT"
skopeo copy -q --src-tls-verify=false "docker://$REG/bench/big:1" "oci:$LAYOUT:big" || die "skopeo warm-up failed"
LAYER_BYTES=$(skopeo inspect --raw --tls-verify=false "docker://$REG/bench/big:1" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
LAYER_DIGEST=$(skopeo inspect --raw --tls-verify=false "docker://$REG/bench/big:1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
say "compressed layer: $LAYER_BYTES bytes ($LAYER_DIGEST)"
# After each timed push: the registry must hold the layer (a push that skipped it would
# look fast).
check_pushed() {
  curl -sf -o /dev/null -I "http://$REG/v2/bench/big/blobs/$LAYER_DIGEST" || die "$1 push left no layer in the registry"
}

# ---------------------------------------------------------------- 3. timed
QUIET_MAX=${QUIET_MAX:-60}
source "$HERE/lib.sh"  # wait_quiet
echo "tool,direction,run,wall_s,cpu_s,mb_per_s" > "$CSV"
timed() {  # tool direction run cmd...
  local tool=$1 dir=$2 run=$3; shift 3
  sync; wait_quiet
  local t0 t1 cpu wall
  t0=$(date +%s%N)
  /usr/bin/time -o "$STATE/time" -f '%U %S' "$@" >/dev/null 2>"$STATE/err" || { cat "$STATE/err" >&2; die "$tool $dir failed"; }
  t1=$(date +%s%N)
  cpu=$(awk '{print $1+$2}' "$STATE/time")
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  echo "$tool,$dir,$run,$wall,$cpu,$(awk -v w="$wall" 'BEGIN{printf "%.1f", 500/w}')" >> "$CSV"
  say "$tool $dir run $run: $wall s wall, $cpu s CPU"
}
for ((r = 1; r <= RUNS; r++)); do
  start_registry
  timed strata push "$r" "$STRATA" --root "$SROOT" push -q "$REG/bench/big:1"
  check_pushed strata
  start_registry
  timed skopeo push "$r" skopeo copy -q --dest-tls-verify=false "oci:$LAYOUT:big" "docker://$REG/bench/big:1"
  check_pushed skopeo
done
# The registry now holds the image (skopeo's push of the same blobs); pull it.
for ((r = 1; r <= RUNS; r++)); do
  rm -rf "$STATE/pull-root" "$STATE/pull-layout"
  timed strata pull "$r" "$STRATA" --root "$STATE/pull-root" pull -q "$REG/bench/big:1"
  rm -rf "$STATE/pull-root" "$STATE/pull-layout"
  timed skopeo pull "$r" skopeo copy -q --src-tls-verify=false "docker://$REG/bench/big:1" "oci:$STATE/pull-layout:big"
done
rm -rf "$STATE/pull-root" "$STATE/pull-layout"

# ---------------------------------------------------------------- 4. summary
{
  echo "# push and pull of a 500 MB image, local docker-registry ($STAMP)"
  echo
  echo "compressed layer: $LAYER_BYTES bytes; MB/s over 500 MB of layer data"
  echo
  echo "| direction | Strata wall s (median) | Strata CPU s | skopeo wall s (median) | skopeo CPU s | skopeo / Strata |"
  echo "|---|---|---|---|---|---|"
  for dir in push pull; do
    med() { awk -F, -v t="$1" -v d="$dir" -v k="$2" '$1==t && $2==d {print $k}' "$CSV" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
    sw=$(med strata 4); kw=$(med skopeo 4); sc=$(med strata 5); kc=$(med skopeo 5)
    awk -v d="$dir" -v sw="$sw" -v kw="$kw" -v sc="$sc" -v kc="$kc" 'BEGIN{
      printf "| %s | %.2f | %.1f | %.2f | %.1f | %.2fx |\n", d, sw, sc, kw, kc, kw/sw}'
  done
  echo
  echo "machine: $(nproc) cores, $(uname -r); skopeo $(skopeo --version | awk '{print $3}'); $(docker-registry --version)"
} > "$OUTDIR/summary.md"
cat "$OUTDIR/summary.md"
# The stores and the registry hold ~1.5 GB: removed (the context is kept for the next run).
stop_registry
rm -rf "$SROOT" "$STATE/registry" "$LAYOUT"
