#!/usr/bin/env bash
# airlock image benchmark: an image of BENCH_IMAGE_MIB MiB (4 incompressible
# layers) served by Debian's docker-registry on a loopback port, measured in
# one run:
#   - pull:  `skopeo copy docker://... oci:DIR` against `airlock pack` of a
#            manifest with that docker:// image (pull + hash + bundle + sign);
#   - push:  `skopeo copy oci:DIR docker://...` against `airlock push` of the
#            imported bundle to a fresh repository (upload + read-back check);
# with peak memory (max RSS) of each command. Prints a table; no targets.
# Usage: benches/images.sh    Env: BENCH_DIR (default target/bench-images),
# BENCH_IMAGE_MIB (default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-target/bench-images}
mib=${BENCH_IMAGE_MIB:-256}
for tool in skopeo docker-registry /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install skopeo docker-registry time)" >&2; exit 2; }
done
cargo build --locked --release --quiet
airlock=$PWD/target/release/airlock

rm -rf "$dir"
mkdir -p "$dir/layout"
dir=$(cd "$dir" && pwd)
echo "bench: writing a ${mib} MiB image in $dir/layout" >&2
python3 - "$dir/layout" "$mib" <<'PY'
import hashlib, json, os, sys
out, mib = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def blob(data, mt):
    h = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{h}", "wb").write(data)
    return {"mediaType": mt, "digest": f"sha256:{h}", "size": len(data)}
layers = [blob(os.urandom(mib * 1024 * 1024 // 4), "application/vnd.oci.image.layer.v1.tar+gzip") for _ in range(4)]
config = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode(), "application/vnd.oci.image.config.v1+json")
manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": layers}).encode(), "application/vnd.oci.image.manifest.v1+json")
manifest["annotations"] = {"org.opencontainers.image.ref.name": "bench"}
open(f"{out}/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY

# start_registry NAME: a docker-registry on a free loopback port; sets REG to
# its HOST:PORT (not run in a subshell, so its pid is recorded for the trap).
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
start_registry() {
  local name=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir/$name"
  cat > "$dir/$name.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/$name}}
http: {addr: 127.0.0.1:$port}
YAML
  docker-registry serve "$dir/$name.yml" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && break
    sleep 0.1
  done
  REG="127.0.0.1:$port"
}
# The source, and a separate target for pushes (so no tool can mount blobs
# it saw during the pull instead of uploading them).
start_registry registry
host=$REG
start_registry target
target=$REG
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$dir/layout:bench" "docker://$host/bench/app:1"
cat > "$dir/airlock.yaml" <<YAML
apiVersion: airlock/v1
kind: Bundle
metadata: {name: bench-images, version: 1.0.0}
images:
  - source: docker://$host/bench/app:1
    insecure: true
YAML

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
  measure skopeo-pull skopeo copy --quiet --src-tls-verify=false "docker://$host/bench/app:1" "oci:$dir/pulled:bench"
  measure airlock-pack "$airlock" pack "$dir/airlock.yaml" --key keys/demo-builder.key --out "$dir/out"
  "$airlock" import "$dir/out/bench-images-1.0.0" --trust keys/demo-trust-policy.yaml --store "$dir/store" >/dev/null
  measure skopeo-push skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$dir/layout:bench" "docker://$target/skopeo/app:1"
  measure airlock-push "$airlock" push --store "$dir/store" --bundle bench-images --registry "$target/mirror" --insecure
  measure airlock-push-again "$airlock" push --store "$dir/store" --bundle bench-images --registry "$target/mirror" --insecure
} > "$results"

python3 - "$results" "$mib" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
mib = int(sys.argv[2])
print(f"image: {mib} MiB in 4 layers, docker-registry on loopback")
print(f"{'command':<20}{'seconds':>9}{'MiB/s':>9}{'max RSS MiB':>13}")
for k, t, rss in rows:
    print(f"{k:<20}{float(t):>9.2f}{mib / max(float(t), 1e-3):>9.0f}{int(rss) / 1024:>13.1f}")
PY
