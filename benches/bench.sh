#!/usr/bin/env bash
# airlock benchmark: pack, verify and import of a mixed data set (about 1 GiB
# of incompressible weights in a few files plus a few hundred small files),
# measured in one run against
#   - openssl dgst -sha256 over the same files (the single-core hashing limit), and
#   - tar -c | zstd -T0 plus sha256sum (the do-it-yourself pipeline),
# with peak memory (max RSS) of each airlock command.
#
# Targets: pack <= 1.5x openssl; verify <= 1.0x openssl; both >= 4x faster
# than the do-it-yourself pipeline; peak RSS < 64 MiB.
# Usage: benches/bench.sh [--check]   (--check: exit 1 if a target is missed)
# Env: BENCH_DIR (default target/bench), BENCH_MIB (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
check=${1:-}
dir=${BENCH_DIR:-target/bench}
mib=${BENCH_MIB:-1024}

command -v /usr/bin/time >/dev/null || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 2; }
cargo build --locked --release --quiet
airlock=$PWD/target/release/airlock

rm -rf "$dir"
mkdir -p "$dir/src/model" "$dir/src/small"
echo "bench: building ${mib} MiB of weights and 300 small files in $dir" >&2
per=$((mib / 4))
# Valid safetensors shards (pack checks the header): one U8 tensor of random bytes each.
for i in 1 2 3 4; do
  f="$dir/src/model/model-0000$i-of-00004.safetensors"
  n=$((per * 1024 * 1024))
  python3 - "$f" "$n" "$i" <<'PY'
import json, struct, sys
path, n, i = sys.argv[1], int(sys.argv[2]), sys.argv[3]
h = json.dumps({f"layer{i}.weight": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
open(path, "wb").write(struct.pack("<Q", len(h)) + h)
PY
  head -c "$n" /dev/urandom >> "$f"
done
# Random small files, none starting with 0x80: the content gate rightly refuses a
# file that opens like a pickle (PROTO 0x80 then a protocol number) and then is not
# one, and about 1 in 16,000 random files does (5% of runs died on it).
for i in $(seq 1 300); do
  { printf 'b'; head -c 4095 /dev/urandom; } > "$dir/src/small/file-$i.bin"
done
cat > "$dir/src/airlock.yaml" <<YAML
apiVersion: airlock/v1
kind: Bundle
metadata: {name: bench, version: 1.0.0}
files:
  - path: small
models:
  - name: weights
    path: model
YAML
files=$(find "$dir/src/model" "$dir/src/small" -type f | sort)
cat $files > /dev/null   # warm the page cache so every contender reads from memory

# measure LABEL CMD...: prints "seconds max_rss_kib"
measure() {
  local label=$1; shift
  local t
  t=$(mktemp)
  /usr/bin/time -o "$t" -f '%e %M' "$@" > /dev/null 2>&1 || { echo "bench: $label failed" >&2; exit 1; }
  echo "$label $(tail -1 "$t")"
  rm -f "$t"
}
results=$(mktemp)
{
  measure openssl openssl dgst -sha256 $files
  measure diy-tar-zstd sh -c "tar -C '$dir/src' -cf - model small | zstd -T0 -q -1 -o '$dir/diy.tar.zst' -f"
  measure diy-sha256sum sha256sum $files
  measure pack "$airlock" pack "$dir/src/airlock.yaml" --key keys/demo-builder.key --out "$dir/out"
  measure verify "$airlock" verify "$dir/out/bench-1.0.0" --trust keys/demo-trust-policy.yaml
  measure import "$airlock" import "$dir/out/bench-1.0.0" --trust keys/demo-trust-policy.yaml --store "$dir/store"
} > "$results"

python3 - "$results" "$mib" "$check" <<'PY'
import sys
rows = {l.split()[0]: (float(l.split()[1]), int(l.split()[2])) for l in open(sys.argv[1]) if l.strip()}
mib, check = int(sys.argv[2]), sys.argv[3] == "--check"
o = rows["openssl"][0]
diy = rows["diy-tar-zstd"][0] + rows["diy-sha256sum"][0]
print(f"data set: {mib} MiB in 4 weight files + 300 x 4 KiB files (page cache warm)")
print(f"{'command':<16}{'seconds':>9}{'MiB/s':>9}{'max RSS MiB':>13}")
for k, (t, rss) in rows.items():
    print(f"{k:<16}{t:>9.2f}{mib / max(t, 1e-3):>9.0f}{rss / 1024:>13.1f}")
print(f"{'diy total':<16}{diy:>9.2f}{mib / max(diy, 1e-3):>9.0f}")
p, v, i = rows["pack"][0], rows["verify"][0], rows["import"][0]
targets = [
    ("pack <= 1.5x openssl", p / o, p <= 1.5 * o),
    ("verify <= 1.0x openssl", v / o, v <= 1.0 * o),
    ("pack >= 4x faster than diy", diy / p, diy >= 4 * p),
    ("verify >= 4x faster than diy", diy / v, diy >= 4 * v),
    ("peak RSS < 64 MiB", max(rows[k][1] for k in ("pack", "verify", "import")) / 1024, all(rows[k][1] < 64 * 1024 for k in ("pack", "verify", "import"))),
]
print(f"import: {i / o:.2f}x openssl")
missed = 0
for name, ratio, ok in targets:
    print(f"{'PASS' if ok else 'MISS'}  {name}: {ratio:.2f}")
    missed += not ok
sys.exit(1 if check and missed else 0)
PY
