#!/usr/bin/env bash
# bench/usr-context.sh DIR BYTES - the 500 MB layer context of bench/compress.sh and
# bench/registry.sh: the first BYTES bytes of regular files under /usr/lib /usr/share /usr/bin
# (path order, files over 64 MiB skipped, the last file cut), copied to DIR/data, with
# `FROM scratch` + `COPY data/ /data/` as DIR/Dockerfile. Idempotent (DIR/.complete);
# DIR/.bytes holds the byte count.
set -euo pipefail
CTX=$1 TOTAL=$2
[[ -f $CTX/.complete ]] && exit 0
rm -rf "$CTX"; mkdir -p "$CTX/data"
find /usr/lib /usr/share /usr/bin -xdev -type f -size -64M -print0 2>/dev/null | sort -z |
  python3 -c '
import os, sys
total, limit, dest = 0, int(sys.argv[1]), sys.argv[2]
for raw in sys.stdin.buffer.read().split(b"\0"):
    if not raw or total >= limit:
        continue
    src = raw.decode("utf-8", "surrogateescape")
    try:
        size = os.path.getsize(src)
    except OSError:
        continue
    size = min(size, limit - total)
    out = os.path.join(dest, src.lstrip("/"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(src, "rb") as f, open(out, "wb") as g:
        g.write(f.read(size))
    total += size
print(total)
' "$TOTAL" "$CTX/data" > "$CTX/.bytes"
printf 'FROM scratch\nCOPY data/ /data/\n' > "$CTX/Dockerfile"
touch "$CTX/.complete"
