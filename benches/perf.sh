#!/usr/bin/env bash
# airlock performance at the limits: airlock against the stock pipelines doing
# the same work, side by side. Runs are paired and interleaved (every round
# runs every contender once, in the same order), and each row is the median
# of its rounds; ratios are medians of the per-round ratios, so a slow moment
# of a shared machine hits both sides of a pair. Page cache warm.
#
# Small files (trees of 1-8 KiB text files, as a `files:` directory):
#   pack dir / tar / tar.zst   vs  tar -c | zstd -T0 -3  +  sha256sum (DIY)
#   verify dir / tar / tar.zst vs  find | xargs openssl dgst -sha256
#     (verify-tar / verify-tar.zst run straight after pack, which leaves the
#     file out of the page cache; the -warm rows read it first)
#   import (dir), export       vs  cp -r  +  find | xargs openssl dgst -sha256
#   tar.zst size               vs  tar -c | zstd -3 of the same tree, beside
#     the least a bundle of the contract's format can be (the floor: the
#     BagIt payload manifest and the files as blobs named by digest only)
# Large files (4 files of random bytes, as a `files:` directory):
#   pack dir / tar             vs  openssl dgst -sha256
#   pack tar.zst               vs  max(openssl dgst, tar -c | zstd -T0 -3)
#   import, export             vs  max(cp -r, openssl dgst)
# Every row shows wall seconds and CPU seconds (user + system); airlock rows
# also their peak RSS (GNU time's maximum resident set). On a shared machine
# the CPU seconds are the steadier figure.
#
# Usage: benches/perf.sh [--huge] [small|large]...
#   --huge   adds the 200k-file tree (minutes, several GiB of metadata churn)
#   small / large: run only that part (default: both)
# Env: PERF_DIR (default target/perf), PERF_FILES (default "10000 50000"),
#      PERF_LARGE_MIB (total of the 4 large files, default 1024),
#      PERF_ROUNDS (default 3), AIRLOCK (binary; default: a release build),
#      AIRLOCK_BASE (a second binary, e.g. one built from main: every airlock
#      command also runs with it in the same round, rows marked @base, and an
#      after/before column compares the two).
# A tool, not a test: it prints figures and never fails on a slow ratio.
#
# Every timed command starts after a `sync`, untimed: import makes its own
# writes durable (one `syncfs` of the store's file system before its commit),
# and without it that sync also wrote back whatever the contenders before it
# had left dirty (the packs' three bundles, about 3x the tree), which none of
# the others waits for.
#
# Deleting trees is kept out of the rounds. This machine's ext4 runs without
# a journal, and such an ext4 does not reuse an inode freed in the last 60 s
# (360 s while its inode table block is dirty, which creating files next to
# it keeps it): every new file then scans past the recently freed inodes
# (`recently_deleted` in fs/ext4/ialloc.c). Deleting the last round's trees
# made whichever contender creates many files next (pack dir, import,
# export, cp -r) pay for it, several times its own cost, while the DIY
# pipeline writes one file. So every tree of many files a contender writes
# (cp -r's copy, pack's directory bundle, import's store, export's output)
# is set aside by a rename into $PERF_DIR/trash, the same for every
# contender, and the trash is deleted when the run ends. Single files (the
# tars, the DIY tar.zst) and the large set's trees (four files each) free a
# few inodes and are deleted at once. The small sets need disk for every
# round's trees (about rounds x (1 + 3 x builds) x the tree); the script
# says so and stops if the disk is short. Start a run a few minutes after
# deleting many files on the same filesystem (a previous run's trash
# included), or its first rounds pay for them.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
files_counts=${PERF_FILES:-10000 50000}
large_mib=${PERF_LARGE_MIB:-1024}
rounds=${PERF_ROUNDS:-3}
parts=()
for a in "$@"; do
  case $a in
    --huge) files_counts="$files_counts 200000" ;;
    small | large) parts+=("$a") ;;
    *) echo "usage: benches/perf.sh [--huge] [small|large]..." >&2; exit 2 ;;
  esac
done
[ ${#parts[@]} -gt 0 ] || parts=(small large)
for tool in /usr/bin/time openssl zstd tar python3 bc; do
  command -v "$tool" >/dev/null || { echo "perf: needs $tool (apt-get install time openssl zstd tar python3 bc)" >&2; exit 2; }
done
if [ -n "${AIRLOCK:-}" ]; then
  airlock=$(realpath "$AIRLOCK")
else
  cargo build --locked --release --quiet
  airlock=$repo/target/release/airlock
fi
base=""
if [ -n "${AIRLOCK_BASE:-}" ]; then
  base=$(realpath "$AIRLOCK_BASE")
fi
dir=${PERF_DIR:-target/perf}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
key=$repo/keys/demo-builder.key
trust=$repo/keys/demo-trust-policy.yaml
echo "perf: $airlock ($("$airlock" --version)), $(nproc) cores, $rounds rounds, in $dir" >&2

# gen.py small DIR N | large DIR MIB: writes the input tree and airlock.yaml.
# No file starts with 0x80 (a pickle PROTO byte): the model gate would
# rightly refuse such a file as a pickle it cannot parse.
cat > "$dir/gen.py" <<'PY'
import os, random, sys
kind, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(f"{d}/tree", exist_ok=True)
rng = random.Random(n)
if kind == "small":
    # Source-like text: compresses like code (~3-4x with zstd -3).
    words = ["fn", "let", "mut", "self", "return", "match", "impl", "pub", "use", "struct",
             "Result", "Error", "Vec", "String", "Option", "Some", "None", "Ok", "Err", "io",
             "path", "bytes", "digest", "size", "read", "write", "file", "entry", "index", "map"]
    for i in range(n):
        sub = f"{d}/tree/d{i // 500:03d}"
        if i % 500 == 0:
            os.makedirs(sub, exist_ok=True)
        size = rng.randint(1024, 8192)
        lines, total = [], 0
        while total < size:
            line = "    " * rng.randint(0, 3) + " ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) + f"; // {rng.randint(0, 99999)}\n"
            lines.append(line)
            total += len(line)
        with open(f"{sub}/f{i:06d}.rs", "w") as f:
            f.write("".join(lines)[:size])
else:
    per = n * (1 << 20) // 4
    for i in range(4):
        with open(f"{d}/tree/shard-{i}.bin", "wb") as f:
            left, first = per, True
            while left:
                chunk = bytearray(os.urandom(min(left, 8 << 20)))
                if first and chunk and chunk[0] == 0x80:
                    chunk[0] = 0x7f
                first = False
                f.write(chunk)
                left -= len(chunk)
with open(f"{d}/airlock.yaml", "w") as f:
    f.write(f"apiVersion: airlock/v1\nkind: Bundle\nmetadata: {{name: {kind}, version: 1.0.0}}\nfiles:\n  - path: tree\n")
PY

# Trees of many files, set aside until the run ends (see the header).
trash=$dir/trash
if [ -e "$trash" ]; then
  echo "perf: removing $trash left by an interrupted run (the first rounds may pay for its freed inodes)" >&2
  rm -rf "$trash"
fi
mkdir -p "$trash"
trap 'rm -rf "$trash"' EXIT
aside_n=0
# discard PATH...: a small set's trees go to the trash (renamed, no inode
# freed); anything else is deleted.
discard() {
  local p
  for p in "$@"; do
    [ -e "$p" ] || continue
    if [ "$kind" = small ] && [ -d "$p" ]; then
      aside_n=$((aside_n + 1))
      mv "$p" "$trash/$aside_n"
    else
      rm -rf "$p"
    fi
  done
}

results=$dir/results.txt
: > "$results"
# run SET ROUND NAME CMD...: times CMD (stdout/stderr to a log), appends
# "SET ROUND NAME seconds maxrss_kib cpu_seconds" to the results.
run() {
  local set=$1 round=$2 name=$3; shift 3
  local t=$dir/time.txt
  # Each contender starts with nothing left to write back (below).
  sync
  if ! /usr/bin/time -o "$t" -f '%e %M %U %S' "$@" > "$dir/last.log" 2>&1; then
    echo "perf: $set $name failed:" >&2; tail -5 "$dir/last.log" >&2; exit 1
  fi
  read -r secs rss user sys < <(tail -1 "$t")
  echo "$set $round $name $secs $rss $(echo "$user + $sys" | bc -l)" >> "$results"
  printf '  %-14s %s\n' "$name" "$(tail -1 "$t")" >&2
}
hash_tree() { find "$1" -type f -print0 | xargs -0 -P1 openssl dgst -sha256 > /dev/null; }
export -f hash_tree

# airlock_rows SET ROUND BIN SUFFIX: every airlock command of a round with
# binary BIN, rows named with SUFFIX ("" or "@base").
airlock_rows() {
  local set=$1 r=$2 bin=$3 sfx=$4
  local out=$dir/out$sfx store=$dir/store$sfx exp=$dir/export$sfx
  discard "$out" "$store" "$exp"
  mkdir -p "$out"
  run "$set" "$r" "pack-dir$sfx" "$bin" pack "$src/airlock.yaml" --key "$key" --out "$out"
  run "$set" "$r" "pack-tar$sfx" "$bin" pack "$src/airlock.yaml" --key "$key" --out "$out" --format tar
  run "$set" "$r" "pack-tar.zst$sfx" "$bin" pack "$src/airlock.yaml" --key "$key" --out "$out" --format tar.zst
  run "$set" "$r" "verify-dir$sfx" "$bin" verify "$out/$name" --trust "$trust"
  run "$set" "$r" "verify-tar$sfx" "$bin" verify "$out/$name.tar" --trust "$trust"
  run "$set" "$r" "verify-tar.zst$sfx" "$bin" verify "$out/$name.tar.zst" --trust "$trust"
  # The rows above run straight after pack, whose FALLOC_FL_INSERT_RANGE
  # (the tag files put in front) dropped the file's page cache; these read
  # it first, as the directory's files were.
  cat "$out/$name.tar" "$out/$name.tar.zst" > /dev/null
  run "$set" "$r" "verify-tar-warm$sfx" "$bin" verify "$out/$name.tar" --trust "$trust"
  run "$set" "$r" "verify-tar.zst-warm$sfx" "$bin" verify "$out/$name.tar.zst" --trust "$trust"
  run "$set" "$r" "import$sfx" "$bin" import "$out/$name" --trust "$trust" --store "$store"
  run "$set" "$r" "export$sfx" "$bin" export "$kind@1.0.0" --store "$store" --out "$exp"
  echo "$set $r size-bundle$sfx $(stat -c %s "$out/$name.tar.zst") 0 0" >> "$results"
  rm -f "$out/$name.tar" "$out/$name.tar.zst"
  discard "$out" "$store" "$exp"
}

cat > "$dir/floor.py" <<'PY'
import hashlib, io, os, sys, tarfile
root = sys.argv[1]
files = sorted(os.path.relpath(os.path.join(d, f), root)
               for d, _, fs in os.walk(root) for f in fs)
blobs, lines = {}, []
for rel in files:
    data = open(os.path.join(root, rel), "rb").read()
    hexd = hashlib.sha256(data).hexdigest()
    if hexd not in blobs:
        blobs[hexd] = data
        lines.append(f"{hexd}  data/blobs/sha256/{hexd}\n")
out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.USTAR_FORMAT)
def add(name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    out.addfile(info, io.BytesIO(data))
add("manifest-sha256.txt", "".join(lines).encode())
for hexd, data in blobs.items():
    add(f"data/blobs/sha256/{hexd}", data)
out.close()
PY

bench_set() {
  set=$1 kind=$2
  local n=$3
  src=$dir/$set
  if [ ! -f "$src/airlock.yaml" ]; then
    echo "perf: generating $set" >&2
    rm -rf "$src"
    python3 "$dir/gen.py" "$kind" "$src" "$n"
  fi
  local cp=$dir/cp
  name=$kind-1.0.0
  find "$src/tree" -type f -print0 | xargs -0 cat > /dev/null
  if [ "$kind" = small ]; then
    # Every round sets aside cp -r's copy and, per build, the directory
    # bundle, the store and the export: each about the tree's size.
    local builds=1 tree_kib avail_kib need_kib
    [ -z "$base" ] || builds=2
    tree_kib=$(du -sk "$src/tree/" | cut -f1)
    need_kib=$((rounds * (1 + 3 * builds) * tree_kib))
    avail_kib=$(df -k --output=avail "$dir" | tail -1)
    if [ "$avail_kib" -lt $((need_kib + 1048576)) ]; then
      echo "perf: $set needs about $((need_kib / 1024)) MiB free in $dir for its trees (set aside until the end), has $((avail_kib / 1024)) MiB: use fewer PERF_ROUNDS or another PERF_DIR" >&2
      exit 2
    fi
    # The least any bundle of the contract's format can be (PRODUCT.md,
    # bundle format v1): the tree's files as an OCI layout's blobs, named by
    # their sha256 in their tar headers, after the BagIt payload manifest
    # that lists each name with its sha256, and nothing else (no description,
    # OCI manifests, SBOMs or signatures), in path order, through zstd -3.
    # Once per set: the bytes do not change between rounds.
    echo "$set 1 size-floor $(python3 "$dir/floor.py" "$src/tree" | zstd -T0 -3 -q -c | wc -c) 0 0" >> "$results"
  fi
  for r in $(seq 1 "$rounds"); do
    echo "perf: $set round $r/$rounds" >&2
    discard "$cp"
    rm -f "$dir/diy.tar.zst"
    if [ "$kind" = small ]; then
      run "$set" "$r" diy sh -c "tar -C '$src' -cf - tree | zstd -T0 -3 -q -f -o '$dir/diy.tar.zst' && find '$src/tree' -type f -print0 | xargs -0 sha256sum > /dev/null"
      run "$set" "$r" cp+openssl bash -c "cp -r '$src/tree' '$cp' && hash_tree '$cp'"
    else
      run "$set" "$r" zstd sh -c "tar -C '$src' -cf - tree | zstd -T0 -3 -q -f -o '$dir/diy.tar.zst'"
      run "$set" "$r" cp cp -r "$src/tree" "$cp"
    fi
    run "$set" "$r" openssl bash -c "hash_tree '$src/tree'"
    echo "$set $r size-diy $(stat -c %s "$dir/diy.tar.zst") 0 0" >> "$results"
    discard "$cp"
    rm -f "$dir/diy.tar.zst"
    airlock_rows "$set" "$r" "$airlock" ""
    if [ -n "$base" ]; then
      airlock_rows "$set" "$r" "$base" "@base"
    fi
  done
}

for part in "${parts[@]}"; do
  if [ "$part" = small ]; then
    for n in $files_counts; do bench_set "small-$n" small "$n"; done
  else
    bench_set "large-$large_mib" large "$large_mib"
  fi
done

python3 - "$results" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(dict))   # set -> name -> round -> (s, rss)
for line in open(sys.argv[1]):
    s, r, name, t, rss, cpu = line.split()
    rows[s][name][int(r)] = (float(t), int(rss), float(cpu))
def med(xs):
    return statistics.median(xs) if xs else float("nan")
for s, by in rows.items():
    small = s.startswith("small")
    rounds = sorted(by["pack-dir"])
    def t(name, r):
        return by[name][r][0]
    if small:
        refs = {"pack-dir": "diy", "pack-tar": "diy", "pack-tar.zst": "diy",
                "verify-dir": "openssl", "verify-tar": "openssl", "verify-tar.zst": "openssl",
                "verify-tar-warm": "openssl", "verify-tar.zst-warm": "openssl",
                "import": "cp+openssl", "export": "cp+openssl"}
        refv = lambda ref, r: max(t(ref, r), 1e-3)
    else:
        refs = {"pack-dir": "openssl", "pack-tar": "openssl", "pack-tar.zst": "max(openssl,zstd)",
                "verify-dir": "openssl", "verify-tar": "openssl", "verify-tar.zst": "openssl",
                "verify-tar-warm": "openssl", "verify-tar.zst-warm": "openssl",
                "import": "max(cp,openssl)", "export": "max(cp,openssl)"}
        def refv(ref, r):
            if ref.startswith("max("):
                a, b = ref[4:-1].split(",")
                return max(t(a, r), t(b, r), 1e-3)
            return max(t(ref, r), 1e-3)
    print(f"\n== {s} ({len(rounds)} rounds, medians)")
    base = any(n.endswith("@base") for n in by)
    head = "   after/before" if base else ""
    print(f"{'command':<20}{'seconds':>9}{'cpu s':>8}{'peak RSS MiB':>14}   {'ratio':>6}  {'reference':<18}{head}")
    # References first, then each command followed by its @base row.
    order = []
    for n in by:
        if not n.endswith("@base") and not n.startswith("size-"):
            order += [n] + ([n + "@base"] if n + "@base" in by else [])
    for name in order:
        secs = med([by[name][r][0] for r in rounds])
        cpu = med([by[name][r][2] for r in rounds])
        rss = max(by[name][r][1] for r in rounds) / 1024
        plain = name.removesuffix("@base")
        if plain in refs:
            ratio = med([t(name, r) / refv(refs[plain], r) for r in rounds])
            line = f"{name:<20}{secs:>9.2f}{cpu:>8.2f}{rss:>14.1f}   {ratio:>5.2f}x  {refs[plain]:<18}"
            if base and not name.endswith("@base") and name + "@base" in by:
                line += f"{med([t(name, r) / max(t(name + '@base', r), 1e-3) for r in rounds]):>6.2f}x"
            print(line)
        else:
            print(f"{name:<20}{secs:>9.2f}{cpu:>8.2f}")
    d = by["size-diy"][rounds[0]][0]
    for k in sorted(n for n in by if n.startswith("size-bundle")):
        b = by[k][rounds[0]][0]
        print(f"tar.zst size ({k[5:]}): {b / 2**20:.1f} MiB, tar | zstd -3 {d / 2**20:.1f} MiB: {b / d:.3f}x")
    if "size-floor" in by:
        f = by["size-floor"][1][0]
        print(f"the contract's floor (BagIt manifest + blobs named by digest, nothing else): {f / 2**20:.1f} MiB: {f / d:.3f}x")
PY
