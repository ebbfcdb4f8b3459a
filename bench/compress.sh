#!/usr/bin/env bash
# bench/compress.sh - gzip and zstd export of a 500 MB layer: Strata side by side with buildah,
# in one run, on the same content.
#
# usage: bench/compress.sh [-n RUNS] [-o OUTDIR] [-c "gzip zstd"] [-l "6 4"]
#   RUNS (default 3) timed exports per tool and codec, alternating tools.
#   -l: extra Strata gzip runs at these --compression-level values (rows "gzip-lN"), timed
#       in the same rounds; buildah always runs at its default.
#   OUTDIR default: bench/results/compress-<UTC stamp>/ (runs.csv, summary.md, env.txt)
#   State (context, stores, outputs) lives under $COMPRESS_STATE (default /root/cmpbench).
#   STRATA_BIN=/path/to/strata skips the release build and uses that binary; QUIET_MAX
#   (default 120) is how many seconds to wait for a < 15 % busy machine before each run.
#
# What it does:
#   1. Context: the first 500,000,000 bytes of regular files under /usr/lib /usr/share /usr/bin
#      (find order sorted by path, files over 64 MiB skipped), copied into ctx/data - real,
#      mixed text and binary content (ELF, .so, scripts, docs, locale data, some .gz).
#      Dockerfile: `FROM scratch` + `COPY data/ /data/`: the image is one 500 MB layer.
#   2. Untimed: `strata build` into a private root (release binary, $CARGO_TARGET_DIR or
#      target/release) and `buildah bud --layers` into a private overlay store.
#   3. Timed, per codec (sync and a < 15 % busy check before each run):
#        strata --root R save --format oci --compression C -o OUT.tar IMAGE
#        buildah --root ... push --compression-format C IMAGE oci:OUTDIR
#      Strata's layer is stored as an uncompressed tar, so its export is read tar +
#      compress + write the archive; buildah's is tar the overlay diff + compress + write the
#      oci dir (it keeps layers as directories). Both write the compressed layer once.
#   4. Wall time (date +%s%N), CPU time of the process tree (GNU time %U+%S), output size.
#      MB/s = 500 / wall. summary.md has medians and the ratio buildah wall / Strata wall.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(cd "$HERE/.." && pwd)
RUNS=3
CODECS="gzip zstd"
LEVELS=""
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUTDIR=""
while getopts "n:o:c:l:h" opt; do
  case $opt in
    n) RUNS=$OPTARG ;; o) OUTDIR=$OPTARG ;; c) CODECS=$OPTARG ;; l) LEVELS=$OPTARG ;;
    *) sed -n '2,31p' "$0"; exit 2 ;;
  esac
done
STATE=${COMPRESS_STATE:-/root/cmpbench}
OUTDIR=${OUTDIR:-$HERE/results/compress-$STAMP}
mkdir -p "$OUTDIR" "$STATE"; OUTDIR=$(cd "$OUTDIR" && pwd)
CSV=$OUTDIR/runs.csv
TOTAL=500000000
TARGET_DIR=${CARGO_TARGET_DIR:-$MAIN/target}
STRATA=${STRATA_BIN:-$TARGET_DIR/release/strata}
SROOT=$STATE/strata-root
BAH=(buildah --root "$STATE/buildah/root" --runroot "$STATE/buildah/run" --storage-driver overlay)
IMAGE=localhost/cmpbench:latest
say() { printf '[bench/compress %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "$*"; exit 1; }

if [[ -z ${STRATA_BIN:-} ]]; then
  say "cargo build --release -p strata (target dir $TARGET_DIR)"
  (cd "$MAIN" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p strata) >&2 || die "cargo build failed"
fi
command -v buildah >/dev/null || die "buildah not installed"

# ---------------------------------------------------------------- 1. context
CTX=$STATE/ctx
[[ -f $CTX/.complete ]] || say "making the 500 MB context from /usr"
"$HERE/usr-context.sh" "$CTX" "$TOTAL" || die "context copy failed"
say "context: $(cat "$CTX/.bytes") bytes in $(find "$CTX/data" -type f | wc -l) files"

# ---------------------------------------------------------------- 2. images (untimed)
say "strata build"
"$STRATA" --root "$SROOT" build --progress quiet -t cmpbench "$CTX" >/dev/null || die "strata build failed"
say "buildah bud"
"${BAH[@]}" bud --layers -t cmpbench -f "$CTX/Dockerfile" "$CTX" >/dev/null || die "buildah bud failed"

# ---------------------------------------------------------------- 3. timed exports
QUIET_MAX=${QUIET_MAX:-120}
source "$HERE/lib.sh"  # wait_quiet
echo "tool,codec,run,wall_s,cpu_s,out_bytes,mb_per_s" > "$CSV"
OUT=$STATE/out
timed() {  # tool codec run cmd...
  local tool=$1 codec=$2 run=$3; shift 3
  rm -rf "$OUT"; mkdir -p "$OUT"
  sync; wait_quiet
  local t0 t1 cpu
  t0=$(date +%s%N)
  /usr/bin/time -o "$OUT.time" -f '%U %S' "$@" >/dev/null 2>"$OUT.err" || { cat "$OUT.err" >&2; die "$tool $codec failed"; }
  t1=$(date +%s%N)
  cpu=$(awk '{print $1+$2}' "$OUT.time")
  local wall bytes
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  bytes=$(du -sb "$OUT" | cut -f1)
  echo "$tool,$codec,$run,$wall,$cpu,$bytes,$(awk -v w="$wall" 'BEGIN{printf "%.1f", 500/w}')" >> "$CSV"
  say "$tool $codec run $run: $wall s wall, $cpu s CPU, $bytes bytes out"
}
for codec in $CODECS; do
  for ((r = 1; r <= RUNS; r++)); do
    timed strata "$codec" "$r" "$STRATA" --root "$SROOT" save --format oci --compression "$codec" -o "$OUT/image.tar" cmpbench
    timed buildah "$codec" "$r" "${BAH[@]}" push --compression-format "$codec" "$IMAGE" "oci:$OUT/layout"
    if [[ $codec == gzip ]]; then
      for level in $LEVELS; do
        timed strata "gzip-l$level" "$r" "$STRATA" --root "$SROOT" save --format oci --compression gzip \
          --compression-level "$level" -o "$OUT/image.tar" cmpbench
      done
    fi
  done
done
rm -rf "$OUT" "$OUT.time" "$OUT.err"

# ---------------------------------------------------------------- 4. summary
{
  echo "# gzip/zstd export of a 500 MB layer ($STAMP)"
  echo
  echo "| codec | Strata wall s (median) | Strata MB/s | Strata CPU s | buildah wall s (median) | buildah MB/s | buildah CPU s | buildah / Strata | out MB Strata / buildah |"
  echo "|---|---|---|---|---|---|---|---|---|"
  rows=$CODECS
  for level in $LEVELS; do [[ " $CODECS " == *" gzip "* ]] && rows+=" gzip-l$level"; done
  for codec in $rows; do
    peer=${codec%%-l*}
    med() { awk -F, -v t="$1" -v c="$2" -v k="$3" '$1==t && $2==c {print $k}' "$CSV" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
    sw=$(med strata "$codec" 4); bw=$(med buildah "$peer" 4); sc=$(med strata "$codec" 5); bc=$(med buildah "$peer" 5)
    so=$(med strata "$codec" 6); bo=$(med buildah "$peer" 6)
    awk -v c="$codec" -v sw="$sw" -v bw="$bw" -v sc="$sc" -v bc="$bc" -v so="$so" -v bo="$bo" 'BEGIN{
      printf "| %s | %.2f | %.0f | %.1f | %.2f | %.0f | %.1f | %.2fx | %.0f / %.0f |\n", c, sw, 500/sw, sc, bw, 500/bw, bc, bw/sw, so/1e6, bo/1e6}'
  done
} > "$OUTDIR/summary.md"
{
  echo "date: $(date -u)"; echo "host: $(uname -a)"; echo "cpus: $(nproc)"
  echo "strata tree: $(git -C "$MAIN" rev-parse --short HEAD); binary: $STRATA ($(stat -c %y "$STRATA"))"
  echo "buildah: $(buildah --version)"
  echo "context bytes: $(cat "$CTX/.bytes")"
} > "$OUTDIR/env.txt"
cat "$OUTDIR/summary.md"
