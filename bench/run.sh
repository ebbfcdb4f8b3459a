#!/usr/bin/env bash
# bench/run.sh - end-to-end Dockerfile build benchmark: Strata side by side with the peer
# builders, in one run, on the shared standard cases (../../shared/bench).
#
# usage: bench/run.sh [-p "PEER ..."] [-c "CASE ..."] [-n COLD_RUNS] [-w WARM_RUNS] [-o OUTDIR]
#   peers: strata plus any peer of ../shared/bench/lib.sh (default: strata docker-bk buildah-overlay-oci)
#   cases: a b c d f e e-push (default, in that order)
#   COLD_RUNS (default 3) for a d e f, WARM_RUNS (default 5) for b c.
#   OUTDIR default: bench/results/<UTC stamp>/ (runs.csv, summary.md, env.txt, failures.txt)
#
# What it does:
#   1. ../shared/bench/peers-up.sh  (base image, registry, dockerd, buildah stores, context)
#   2. the peers: ../shared/bench/run-peers.sh -o OUTDIR (its method, its command lines)
#   3. Strata: the same method, appended to the same OUTDIR/runs.csv:
#      - release binary target/release/strata (built here with cargo build --release -p strata)
#      - a private root per cold run under $BENCH_STATE/strata-roots/<stamp>/ (all deleted only at
#        the end, see SROOTS below); "cold" = new empty root, then `strata load -i $BENCH_STATE/base/busybox-docker.tar` + `strata tag busybox:latest
#        127.0.0.1:5000/busybox:latest` (untimed), so the cases' BASE resolves locally
#      - build: strata --root R build --progress plain --network none --build-arg BASE=<same as peers> -f F -t T CTX
#        (--network none as the peers' command lines have it)
#      - e-push: a fresh untimed build, then the timed `strata push` (gzip + upload) of a new tag;
#        the pushed repository is deleted and the registry garbage-collected after each run
#      - before each timed run: sync + wait until the machine is < 15 % busy (as run-peers.sh)
#      - wall = date +%s%N around the command; peak RSS = GNU time %M (max process of the tree)
#      - b/c: one untimed warm-up build first; c rewrites src/main.txt before each run
#   4. ../shared/bench/summarize.sh OUTDIR > OUTDIR/summary.md, plus a ratio table
#      (peer median / strata median) appended to summary.md.
# Daemons are left running; stop them with ../shared/bench/peers-down.sh.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(cd "$HERE/.." && pwd)
SHARED=${SHARED_BENCH:-$(cd "$MAIN/../shared/bench" && pwd)}
# settings (BENCH_STATE, REGISTRY_ADDR, BASE_REF, ...) and the peers' command lines
source "$SHARED/lib.sh"

PEERS="strata docker-bk buildah-overlay-oci"
CASES="a b c d f e e-push"
COLD_RUNS=3
WARM_RUNS=5
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUTDIR=""
while getopts "p:c:n:w:o:h" opt; do
  case $opt in
    p) PEERS=$OPTARG ;; c) CASES=$OPTARG ;; n) COLD_RUNS=$OPTARG ;; w) WARM_RUNS=$OPTARG ;;
    o) OUTDIR=$OPTARG ;; *) sed -n '2,26p' "$0"; exit 2 ;;
  esac
done
OUTDIR=${OUTDIR:-$HERE/results/$STAMP}
mkdir -p "$OUTDIR"; OUTDIR=$(cd "$OUTDIR" && pwd)
LOGDIR=$STATE/logs/strata-$STAMP
mkdir -p "$LOGDIR"
CSV=$OUTDIR/runs.csv
CTX_APP=${BENCH_CTX:-$STATE/ctx-app}
CTX_EMPTY=$STATE/ctx-empty
STRATA=$MAIN/target/release/strata
# One fresh Strata root per cold run / per warm case, all under SROOTS, deleted only at the very
# end (after the peers): deleting a 10k-file root right before the next cold build made ext4's
# inode allocator (recently_deleted() in __ext4_new_inode, seen with perf) scan the just-freed
# inodes on every create: cold case a grew 2.0 -> 4.6 -> 7.1 -> 8.7 s, all of it kernel time.
SROOTS=${STRATA_BENCH_ROOTS:-$STATE/strata-roots}/$STAMP
SROOT=$SROOTS/unset
TCK=$(getconf CLK_TCK)
say() { printf '[bench/run %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

T_START=$(date +%s)
say "cargo build --release -p strata"
(cd "$MAIN" && cargo build --release -p strata) >&2 || { say "cargo build failed"; exit 1; }
say "peers-up.sh"
"$SHARED/peers-up.sh" >&2 || { say "peers-up.sh failed"; exit 1; }

others=""; want_strata=0
for p in $PEERS; do if [[ $p == strata ]]; then want_strata=1; else others+="$p "; fi; done
[[ -s $CSV ]] || echo "peer,case,run,wall_s,rc,builder_peak_rss_kb,cli_peak_rss_kb,dockerd_peak_rss_kb,containerd_peak_rss_kb,cpu_s,sys_busy_cpu_s,pre_busy_pct,quiet_wait_s" > "$CSV"

# ------------------------------------------------------------------ Strata (same method as run-peers.sh)
source "$HERE/lib.sh"  # wait_quiet, sys_busy_ticks, PRE_BUSY, QUIET_WAIT

strata_reset() {  # CASE RUN -> cold state: new empty root + the base image under the cases' name
  SROOT=$SROOTS/$1-$2; mkdir -p "$SROOT"
  "$STRATA" --root "$SROOT" load -i "$STATE/base/busybox-docker.tar" >/dev/null &&
  "$STRATA" --root "$SROOT" tag busybox:latest "$BASE_REF"
}

strata_build_cmd() {  # Dockerfile ctx tag
  BUILD_CMD=("$STRATA" --root "$SROOT" build --progress plain --network none --build-arg "BASE=$BASE_REF" -f "$1" -t "$3" "$2")
}

strata_timed() {  # CASE RUN LOG
  local c=$1 i=$2 log=$3 tf=$LOGDIR/.time t0 t1 rc sb0 sb1
  sync; wait_quiet
  sb0=$(sys_busy_ticks); t0=$(date +%s%N)
  /usr/bin/time -f '%M %U %S' -o "$tf" timeout 1800 "${BUILD_CMD[@]}" > "$log" 2>&1
  rc=$?
  t1=$(date +%s%N); sb1=$(sys_busy_ticks)
  local rss u s wall cpu sbusy
  read -r rss u s < <(tail -1 "$tf")
  [[ $rss =~ ^[0-9]+$ ]] || { rss=0; u=0; s=0; }
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  cpu=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u+s}')
  sbusy=$(awk -v d=$((sb1 - sb0)) -v t="$TCK" 'BEGIN{printf "%.2f", d/t}')
  echo "strata,$c,$i,$wall,$rc,$rss,$rss,0,0,$cpu,$sbusy,$PRE_BUSY,$QUIET_WAIT" >> "$CSV"
  say "strata $c #$i: ${wall}s rc=$rc rss=$((rss / 1024))MiB cpu=${cpu}s (pre ${PRE_BUSY}%)"
  if ((rc != 0)); then
    { echo "== strata $c #$i rc=$rc ($log)"; tail -15 "$log"; } >> "$OUTDIR/failures.txt"
    tail -15 "$log" >&2
  fi
  return $rc
}

strata_case() {
  local c=$1 df ctx img n i log
  case $c in
    a|b|c) df=$SHARED/cases/app/Dockerfile; ctx=$CTX_APP; img=bench/app ;;
    d) df=$SHARED/cases/multistage/Dockerfile; ctx=$CTX_EMPTY; img=bench/multistage ;;
    e) df=$SHARED/cases/biglayer/Dockerfile; ctx=$CTX_EMPTY; img=bench/biglayer ;;
    f) df=$SHARED/cases/manyrun/Dockerfile; ctx=$CTX_EMPTY; img=bench/manyrun ;;
    e-push) df=$SHARED/cases/biglayer/Dockerfile; ctx=$CTX_EMPTY; img=bench/biglayer ;;
    *) say "strata: unknown case $c"; return 1 ;;
  esac
  case $c in b|c) n=$WARM_RUNS ;; *) n=$COLD_RUNS ;; esac
  "$SHARED/gen-context.sh" "$CTX_APP" >/dev/null   # restores src/main.txt
  if [[ $c == b || $c == c ]]; then
    strata_reset "$c" warm || { say "strata reset failed"; return 1; }
    strata_build_cmd "$df" "$ctx" "$img:strata"
    "${BUILD_CMD[@]}" > "$LOGDIR/strata-$c-warmup.log" 2>&1 || {
      { echo "== strata $c warm-up build failed ($LOGDIR/strata-$c-warmup.log)"; tail -15 "$LOGDIR/strata-$c-warmup.log"; } >> "$OUTDIR/failures.txt"
      say "strata $c warm-up failed"; tail -15 "$LOGDIR/strata-$c-warmup.log" >&2; return 1; }
  fi
  for ((i = 1; i <= n; i++)); do
    log=$LOGDIR/strata-$c-$i.log
    case $c in
      a|d|e|f) strata_reset "$c" "$i" || { say "strata reset failed"; return 1; }
               strata_build_cmd "$df" "$ctx" "$img:strata" ;;
      c) printf 'main source file, revision %s %s %s\n' strata "$i" "$(date +%s%N)" > "$CTX_APP/src/main.txt" ;;
      e-push)  # as run-peers.sh: a fresh build (untimed), then the timed push (gzip + upload)
        strata_reset "$c" "$i" || { say "strata reset failed"; return 1; }
        strata_build_cmd "$df" "$ctx" "$img:strata"
        "${BUILD_CMD[@]}" > "$LOGDIR/strata-$c-$i-build.log" 2>&1 || { say "strata e-push: build failed"; return 1; }
        "$STRATA" --root "$SROOT" tag "$img:strata" "$REGISTRY_ADDR/bench-push/strata:run$i" || return 1
        BUILD_CMD=("$STRATA" --root "$SROOT" push "$REGISTRY_ADDR/bench-push/strata:run$i") ;;
    esac
    strata_timed "$c" "$i" "$log"; local rc=$?
    if [[ $c == e-push ]]; then  # as run-peers.sh: no blob is reused by the next push
      rm -rf "$STATE/registry/data/docker/registry/v2/repositories/bench-push"
      docker-registry garbage-collect "$STATE/registry/config.yml" >/dev/null 2>&1 || say "registry gc failed"
    fi
    ((rc == 0)) || return 1
  done
  "$SHARED/gen-context.sh" "$CTX_APP" >/dev/null
}

# worktree state the binary was built from (other sessions may edit the tree while this runs)
GIT_HEAD=$(git -C "$MAIN" rev-parse HEAD); GIT_DIRTY=$(git -C "$MAIN" status --short -- . ':!bench')
if ((want_strata)); then
  say "=== strata ($("$STRATA" --version 2>&1), commit $(git -C "$MAIN" rev-parse --short HEAD)$(git -C "$MAIN" diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo '+uncommitted changes'))"
  for c in $CASES; do
    strata_case "$c" || say "strata $c: FAILED (see $OUTDIR/failures.txt)"
  done
fi

# ------------------------------------------------------------------ peers (the shared runner)
if [[ -n $others ]]; then
  "$SHARED/run-peers.sh" -p "${others% }" -c "$CASES" -n "$COLD_RUNS" -w "$WARM_RUNS" -o "$OUTDIR" >/dev/null
fi
{
  echo "strata: $("$STRATA" --version 2>&1); binary $STRATA; built from commit $GIT_HEAD"
  [[ -z $GIT_DIRTY ]] && echo "strata worktree at build time: clean" || echo "$GIT_DIRTY" | sed 's/^/strata worktree at build time: /'
  echo "strata cases: $CASES (n cold $COLD_RUNS, warm $WARM_RUNS); roots $SROOTS/<case>-<run|warm>; logs $LOGDIR"
  echo "bench/run.sh wall_s: $(( $(date +%s) - T_START ))"
} >> "$OUTDIR/env.txt"

rm -rf "$SROOTS"   # after everything was timed (see SROOTS above)

# ------------------------------------------------------------------ summary + ratios
"$SHARED/summarize.sh" "$OUTDIR" > "$OUTDIR/summary.md"
{
  echo; echo "### Ratio: peer median wall / Strata median wall (>1 = Strata faster)"; echo
  awk -F, '
  function median(s,   n, i, j, t, a) { n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j+1] = a[j]; a[j+1] = t }
    return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
  NR == 1 { next }
  { k = $2 SUBSEP $1; if (!($1 in seen)) { seen[$1] = 1; if ($1 != "strata") peers[++np] = $1 }
    if (!($2 in seenc)) seenc[$2] = 1
    if ($5 != 0) fail[k] = 1; else vals[k] = vals[k] " " $4 }
  END {
    split("a b c d e e-push f", order, " ")
    hdr = "| case | strata s |"; sep = "|---|---|"
    for (j = 1; j <= np; j++) { hdr = hdr " " peers[j] " s | " peers[j] " / strata |"; sep = sep "---|---|" }
    print hdr; print sep
    for (o = 1; o <= 7; o++) { c = order[o]; if (!(c in seenc)) continue
      ks = c SUBSEP "strata"; st = (ks in fail) ? "FAIL" : ((ks in vals) ? sprintf("%.2f", median(vals[ks])) : "-")
      line = "| " c " | " st " |"
      for (j = 1; j <= np; j++) { k = c SUBSEP peers[j]
        pv = (k in fail) ? "FAIL" : ((k in vals) ? sprintf("%.2f", median(vals[k])) : "-")
        r = (pv + 0 > 0 && st + 0 > 0) ? sprintf("%.2f", pv / st) : "-"
        line = line " " pv " | " r " |" }
      print line }
  }' "$CSV"
} >> "$OUTDIR/summary.md"
cat "$OUTDIR/summary.md"
[[ -s $OUTDIR/failures.txt ]] && { say "failures:"; cat "$OUTDIR/failures.txt" >&2; }
say "results in $OUTDIR"
