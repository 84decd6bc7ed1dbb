#!/usr/bin/env bash
# airlock delta benchmark: bytes carried and pack time of a delta bundle
# (`pack --base RECEIPT`) against the full bundle, for three changes:
#   model  - one of four safetensors shards changed
#   wheels - one wheel of a 20-wheel wheelhouse replaced by a new version
#   image  - one of four layers of an OCI image changed
# Each round: pack 1.0.0 (tar), import it into a fresh store, `store receipt`,
# change one thing, pack 1.1.0 full and as a delta, import the delta (it
# must complete the store). Expected: delta bytes ~ changed bytes + tag files.
# Usage: benches/delta.sh
# Env: BENCH_DIR (default target/bench-delta), BENCH_MIB (data per round,
#      default 256), AIRLOCK (binary to use; default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-target/bench-delta}
mib=${BENCH_MIB:-256}
if [ -n "${AIRLOCK:-}" ]; then
  airlock=$AIRLOCK
else
  cargo build --locked --release --quiet
  airlock=$PWD/target/release/airlock
fi
rm -rf "$dir"
mkdir -p "$dir/keys"
dir=$(cd "$dir" && pwd)
"$airlock" keygen "$dir/keys/build" >/dev/null
"$airlock" keygen "$dir/keys/high" >/dev/null
cat > "$dir/policy.yaml" <<YAML
apiVersion: airlock/v1
kind: TrustPolicy
keys:
  - {name: build, publicKey: keys/build.pub, roles: [builder]}
require: {builder: 1}
YAML
cat > "$dir/base.yaml" <<YAML
apiVersion: airlock/v1
kind: TrustPolicy
keys:
  - {name: high, publicKey: keys/high.pub, roles: [store]}
YAML

# gen.py KIND DIR MIB VERSION: writes the round's inputs and airlock.yaml;
# VERSION 1.1.0 changes one shard / wheel / layer. Prints the bytes changed.
cat > "$dir/gen.py" <<'PY'
import hashlib, json, os, struct, sys, zipfile
kind, d, mib, version = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
changed = version != "1.0.0"
os.makedirs(d, exist_ok=True)
def rnd(n, seed):
    # Deterministic incompressible bytes: the same seed gives the same file.
    out, i = bytearray(), 0
    while len(out) < n:
        out += hashlib.shake_256(f"{seed}-{i}".encode()).digest(1 << 20)
        i += 1
    return bytes(out[:n])
meta = f"apiVersion: airlock/v1\nkind: Bundle\nmetadata: {{name: {kind}, version: {version}}}\n"
delta = 0
if kind == "model":
    os.makedirs(f"{d}/model", exist_ok=True)
    n = mib * (1 << 20) // 4
    for i in range(1, 5):
        seed = f"shard{i}-v2" if changed and i == 3 else f"shard{i}"
        h = json.dumps({f"layer{i}.weight": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        body = struct.pack("<Q", len(h)) + h + rnd(n, seed)
        open(f"{d}/model/model-0000{i}-of-00004.safetensors", "wb").write(body)
        if changed and i == 3:
            delta += len(body)
    meta += "models:\n  - name: weights\n    path: model\n"
elif kind == "wheels":
    wh = f"{d}/wheelhouse"
    os.makedirs(wh, exist_ok=True)
    for f in os.listdir(wh):
        os.remove(f"{wh}/{f}")
    n = mib * (1 << 20) // 20
    reqs = ""
    for i in range(20):
        v = "1.0.1" if changed and i == 7 else "1.0.0"
        name = f"pkg{i:02d}"
        path = f"{wh}/{name}-{v}-py3-none-any.whl"
        # Fixed timestamps: the same wheel is the same bytes in both rounds.
        entry = lambda f: zipfile.ZipInfo(f, date_time=(1980, 1, 1, 0, 0, 0))
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            z.writestr(entry(f"{name}/data.bin"), rnd(n, f"{name}-{v}"))
            z.writestr(entry(f"{name}-{v}.dist-info/METADATA"), f"Metadata-Version: 2.1\nName: {name}\nVersion: {v}\n")
            z.writestr(entry(f"{name}-{v}.dist-info/WHEEL"), "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        reqs += f"{name}=={v} --hash=sha256:{digest}\n"
        if changed and i == 7:
            delta += os.path.getsize(path)
    open(f"{d}/requirements.txt", "w").write(reqs)
    meta += "python:\n  - requirements: requirements.txt\n    wheelhouse: wheelhouse\n"
elif kind == "image":
    lay = f"{d}/layout"
    os.makedirs(f"{lay}/blobs/sha256", exist_ok=True)
    open(f"{lay}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
    def put(b, mt):
        h = hashlib.sha256(b).hexdigest()
        open(f"{lay}/blobs/sha256/{h}", "wb").write(b)
        return {"mediaType": mt, "digest": f"sha256:{h}", "size": len(b)}
    n = mib * (1 << 20) // 4
    layers = []
    for i in range(4):
        seed = f"layer{i}-v2" if changed and i == 3 else f"layer{i}"
        # An uncompressed layer tar of one file (512-byte header, data, padding).
        data = rnd(n, seed)
        hdr = bytearray(512)
        hdr[0:len(f"l{i}.bin")] = f"l{i}.bin".encode()
        hdr[100:108] = b"0000644\0"
        hdr[124:136] = f"{n:011o}\0".encode()
        hdr[136:148] = b"00000000000\0"
        hdr[148:156] = b" " * 8
        hdr[156] = ord("0")
        hdr[257:263] = b"ustar\0"
        hdr[263:265] = b"00"
        hdr[148:156] = f"{sum(hdr):06o}\0 ".encode()
        tar = bytes(hdr) + data + b"\0" * (-n % 512) + b"\0" * 1024
        layers.append(put(tar, "application/vnd.oci.image.layer.v1.tar"))
        if changed and i == 3:
            delta += len(tar)
    cfg = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode(), "application/vnd.oci.image.config.v1+json")
    m = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": layers}).encode(), "application/vnd.oci.image.manifest.v1+json")
    m["annotations"] = {"org.opencontainers.image.ref.name": "app"}
    open(f"{lay}/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [m]}))
    meta += "images:\n  - source: oci-layout:layout:app\n    name: registry.example/bench/app:1\n"
open(f"{d}/airlock.yaml", "w").write(meta)
print(delta)
PY

now() { date +%s.%N; }
printf '%-7s %12s %12s %12s %9s %9s %8s\n' round full_bytes delta_bytes changed full_s delta_s ratio
for kind in model wheels image; do
  r="$dir/$kind"
  python3 "$dir/gen.py" "$kind" "$r/src" "$mib" 1.0.0 >/dev/null
  "$airlock" pack "$r/src/airlock.yaml" --key "$dir/keys/build.key" --out "$r/v1" --format tar >/dev/null
  "$airlock" import "$r/v1/$kind-1.0.0.tar" --trust "$dir/policy.yaml" --store "$r/store" >/dev/null
  "$airlock" store receipt --store "$r/store" --key "$dir/keys/high.key" --out "$r/have.json" >/dev/null
  changed=$(python3 "$dir/gen.py" "$kind" "$r/src" "$mib" 1.1.0)
  t0=$(now)
  "$airlock" pack "$r/src/airlock.yaml" --key "$dir/keys/build.key" --out "$r/full" --format tar >/dev/null
  t1=$(now)
  "$airlock" pack "$r/src/airlock.yaml" --key "$dir/keys/build.key" --out "$r/delta" --format tar \
    --base "$r/have.json" --base-trust "$dir/base.yaml" >/dev/null
  t2=$(now)
  "$airlock" import "$r/delta/$kind-1.1.0.tar" --trust "$dir/policy.yaml" --store "$r/store" >/dev/null
  full=$(stat -c %s "$r/full/$kind-1.1.0.tar")
  delta=$(stat -c %s "$r/delta/$kind-1.1.0.tar")
  printf '%-7s %12d %12d %12d %9.2f %9.2f %7.1f%%\n' "$kind" "$full" "$delta" "$changed" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "100 * $delta / $full" | bc -l)"
done
echo "receipt: $(stat -c %s "$dir/model/have.json") bytes for $(grep -o '"blobCount":[0-9]*' <(base64 -d <<<"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["payload"])' "$dir/model/have.json")") | cut -d: -f2) blobs (model round)"
