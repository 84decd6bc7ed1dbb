#!/usr/bin/env bash
# airlock benchmark: import of one bundle into an S3-compatible object store
# (moto's S3 server on loopback, `--store s3://bench/hs`) and into a local
# directory store, with the ratio and each import's peak memory (max RSS).
# The bundle: BENCH_MIB (default 256) of incompressible weights in four
# safetensors shards (each above the 8 MiB part size: multipart uploads) plus
# 100 small files. moto keeps objects in its own memory, so the figure is
# airlock's client side plus a Python server, not a production store.
# Usage: benches/s3.sh     Env: BENCH_DIR (default target/bench-s3), BENCH_MIB
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-target/bench-s3}
mib=${BENCH_MIB:-256}

command -v /usr/bin/time >/dev/null || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 2; }
python3 -c 'import moto.server, boto3' 2>/dev/null || { echo "bench: needs moto[server] (scripts/test installs it)" >&2; exit 2; }
cargo build --locked --release --quiet
airlock=$PWD/target/release/airlock

rm -rf "$dir"
mkdir -p "$dir/src/model" "$dir/src/small"
echo "bench: building ${mib} MiB of weights and 100 small files in $dir" >&2
per=$((mib / 4))
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
for i in $(seq 1 100); do head -c 4096 /dev/urandom > "$dir/src/small/file-$i.bin"; done
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
"$airlock" keygen "$dir/builder" > /dev/null
cat > "$dir/policy.yaml" <<YAML
apiVersion: airlock/v1
kind: TrustPolicy
keys:
  - name: builder
    publicKey: builder.pub
    roles: [builder]
require:
  builder: 1
YAML
"$airlock" pack "$dir/src/airlock.yaml" --key "$dir/builder.key" --out "$dir/dist" --format dir > /dev/null
bundle="$dir/dist/bench-1.0.0"
cat $(find "$bundle" -type f) > /dev/null   # warm the page cache

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" > "$dir/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.2
done
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
python3 -c "import boto3; boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL', region_name='us-east-1').create_bucket(Bucket='bench')"

# measure LABEL CMD...: prints "LABEL seconds max_rss_kib"
measure() {
  local label=$1; shift
  local t
  t=$(mktemp)
  /usr/bin/time -o "$t" -f '%e %M' "$@" > /dev/null 2>&1 || { echo "bench: $label failed" >&2; cat "$t" >&2; exit 1; }
  echo "$label $(tail -1 "$t")"
  rm -f "$t"
}

local_=$(measure local "$airlock" import "$bundle" --trust "$dir/policy.yaml" --store "$dir/store")
s3=$(measure s3 "$airlock" import "$bundle" --trust "$dir/policy.yaml" --store s3://bench/hs)
read -r _ lt lr <<< "$local_"
read -r _ st sr <<< "$s3"
python3 - "$mib" "$lt" "$lr" "$st" "$sr" <<'PY'
import sys
mib, lt, lr, st, sr = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"import of {mib} MiB (4 shards + 100 small files)")
print("| store | seconds | MiB/s | peak RSS |")
print("|---|---|---|---|")
print(f"| local directory | {lt:.2f} | {mib / max(lt, 0.01):.0f} | {lr / 1024:.1f} MiB |")
print(f"| s3:// (moto on loopback) | {st:.2f} | {mib / max(st, 0.01):.0f} | {sr / 1024:.1f} MiB |")
print(f"ratio s3 / local: {st / max(lt, 0.01):.1f}x")
PY
