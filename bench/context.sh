#!/usr/bin/env bash
# bench/context.sh - issue 3's build-core benchmark: a 20-instruction Dockerfile
# (bench/cases/context20) over the shared 10 000-file / 200 MiB context, Strata side by side
# with buildah (and any other peer of ../shared/bench/lib.sh) in one run, plus `cp -a` of the
# same tree as the floor for the cold COPY.
#
# usage: bench/context.sh [-p "PEER ..."] [-n COLD_RUNS] [-w WARM_RUNS] [-o OUTDIR]
#   peers: strata plus peers of ../shared/bench/lib.sh (default: strata buildah-overlay-oci)
#   COLD_RUNS default 3, WARM_RUNS default 5; OUTDIR default bench/results/context-<UTC stamp>/
#
# Scenarios, per peer:
#   cold    new store holding only the base image, then build
#   noop    rebuild with nothing changed (after one untimed warm-up build)
#   touch   rebuild after `touch` of one copied data file (mtime changes, content does not)
#   edit    rebuild after src/main.txt gets new content (the COPY of src/ and what follows re-run)
# and `cp -a CTX/data` into a fresh directory (cold COPY floor), COLD_RUNS times.
# Method as ../shared/bench/run-peers.sh: sync + wait until the machine is < 15 % busy before
# each timed run, wall from date +%s%N, peak RSS from GNU time %M (dockerd's own RSS is not
# included for docker peers). Strata's COPY data/ step time is read from its plain progress.
# Writes OUTDIR/runs.csv (peer,scenario,run,wall_s,rc,peak_rss_kb,copy_step_s) and summary.md.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(cd "$HERE/.." && pwd)
SHARED=${SHARED_BENCH:-$(cd "$MAIN/../shared/bench" && pwd)}
source "$SHARED/lib.sh"

PEERS="strata buildah-overlay-oci"
COLD_RUNS=3
WARM_RUNS=5
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUTDIR=""
while getopts "p:n:w:o:h" opt; do
  case $opt in
    p) PEERS=$OPTARG ;; n) COLD_RUNS=$OPTARG ;; w) WARM_RUNS=$OPTARG ;; o) OUTDIR=$OPTARG ;;
    *) sed -n '2,22p' "$0"; exit 2 ;;
  esac
done
OUTDIR=${OUTDIR:-$HERE/results/context-$STAMP}
mkdir -p "$OUTDIR"; OUTDIR=$(cd "$OUTDIR" && pwd)
CSV=$OUTDIR/runs.csv
LOGDIR=$OUTDIR/logs; mkdir -p "$LOGDIR"
DF=$HERE/cases/context20/Dockerfile
CTX=$STATE/ctx-app
STRATA=$MAIN/target/release/strata
# Everything a run creates stays until the end: deleting a 10k-file tree right before the next
# cold run makes ext4's inode allocator slow (see bench/run.sh).
SCRATCH=$STATE/context-bench/$STAMP
say() { printf '[bench/context %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ -z ${STRATA_NO_BUILD:-} ]]; then  # set it to time the binary already built
  say "cargo build --release -p strata"
  (cd "$MAIN" && cargo build --release -p strata) >&2 || exit 1
fi
"$SHARED/peers-up.sh" >&2 || { say "peers-up.sh failed"; exit 1; }
"$SHARED/gen-context.sh" "$CTX" >/dev/null
echo "peer,scenario,run,wall_s,rc,peak_rss_kb,copy_step_s" > "$CSV"

source "$HERE/lib.sh"  # wait_quiet

# timed PEER SCENARIO RUN LOG CMD...: one measured command, appended to the CSV
timed() {
  local peer=$1 sc=$2 i=$3 log=$4; shift 4
  local tf=$LOGDIR/.time t0 t1 rc rss wall step
  sync; wait_quiet
  t0=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$tf" "$@" > "$log" 2>&1; rc=$?
  t1=$(date +%s%N)
  rss=$(tail -1 "$tf"); [[ $rss =~ ^[0-9]+$ ]] || rss=0
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  # Strata's plain progress: the DONE line of the "COPY data/" step.
  step=$(awk '/COPY data\/ /{n=$1} n && $1==n && $2=="DONE"{sub("s","",$3); print $3; exit}' "$log")
  echo "$peer,$sc,$i,$wall,$rc,$rss,${step:-}" >> "$CSV"
  say "$peer $sc #$i: ${wall}s rc=$rc rss=$((rss / 1024))MiB${step:+ copy-step=${step}s}"
  ((rc == 0)) || tail -5 "$log" >&2
}

# build_cmd PEER ROOT TAG: sets BUILD_CMD for a build of the case
build_cmd() {
  if [[ $1 == strata ]]; then
    BUILD_CMD=("$STRATA" --root "$2" build --progress plain --build-arg "BASE=$BASE_REF" -f "$DF" -t "$3" "$CTX")
  else
    peer_build_cmd "$1" "$DF" "$CTX" "$3"
  fi
}

# reset PEER NAME: a cold store holding only the base image; prints the Strata root
reset() {
  if [[ $1 == strata ]]; then
    local root=$SCRATCH/strata-$2; mkdir -p "$root"
    "$STRATA" --root "$root" load -i "$STATE/base/busybox-docker.tar" >/dev/null &&
      "$STRATA" --root "$root" tag busybox:latest "$BASE_REF" && echo "$root"
  else
    peer_reset "$1" && echo none
  fi
}

DATA_FILE=$CTX/data/d50/f050.bin
for peer in $PEERS; do
  tag=bench/context20:$peer
  for ((i = 1; i <= COLD_RUNS; i++)); do
    root=$(reset "$peer" "cold-$i") || { say "$peer reset failed"; continue 2; }
    build_cmd "$peer" "$root" "$tag"
    timed "$peer" cold "$i" "$LOGDIR/$peer-cold-$i.log" "${BUILD_CMD[@]}"
  done
  # The warm scenarios continue from the last cold build's store.
  for sc in noop touch edit; do
    for ((i = 1; i <= WARM_RUNS; i++)); do
      case $sc in
        touch) touch -d "@$((1600000000 + i))" "$DATA_FILE" ;;
        edit) printf 'main source file, revision %s %s\n' "$peer" "$(date +%s%N)" > "$CTX/src/main.txt" ;;
      esac
      timed "$peer" "$sc" "$i" "$LOGDIR/$peer-$sc-$i.log" "${BUILD_CMD[@]}"
    done
  done
  touch -d @1577836800 "$DATA_FILE"
  "$SHARED/gen-context.sh" "$CTX" >/dev/null   # restores src/main.txt
done

for ((i = 1; i <= COLD_RUNS; i++)); do
  dest=$SCRATCH/cp-$i; mkdir -p "$dest"
  timed cp-a cold "$i" "$LOGDIR/cp-$i.log" cp -a "$CTX/data" "$dest/data"
done

{
  echo "# bench/context.sh $STAMP"
  echo
  echo "Median wall seconds [min-max], peak RSS MiB (max), n per cell as run."
  echo
  echo "| peer | scenario | wall s | peak RSS MiB | Strata's COPY data/ step s |"
  echo "|---|---|---|---|---|"
  awk -F, 'NR > 1 && $5 == 0 { k = $1 "," $2; w[k] = w[k] " " $4; if ($6 > r[k]) r[k] = $6; if ($7 != "") s[k] = s[k] " " $7; order[k] = NR }
    END { for (k in w) print order[k] "\t" k "\t" w[k] "\t" r[k] "\t" s[k] }' "$CSV" | sort -n |
  while IFS=$'\t' read -r _ key walls rss steps; do
    med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{if (NR) printf "%.3f [%.3f-%.3f]", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[1], a[NR]}'; }
    echo "| ${key/,/ | } | $(echo "$walls" | med) | $((rss / 1024)) | $(echo "$steps" | med) |"
  done
} > "$OUTDIR/summary.md"
cat "$OUTDIR/summary.md"
say "results in $OUTDIR (scratch stores under $SCRATCH; delete when done)"
