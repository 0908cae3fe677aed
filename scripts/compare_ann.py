"""ANN recall@10 and speed: videovector's usearch HNSW (vectors stored as f32, f16 and int8)
against faiss HNSW, same clustered 512-d unit vectors, same graph settings (M 16, efConstruction
128, efSearch 128), same machine, one run. Exact neighbours come from brute force over the f32
vectors (the Rust example's, checked here with numpy).

    bash scripts/compare_ann.sh [N] [DIMS] [QUERIES]
"""
import json
import os
import subprocess
import sys
import time

import faiss
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "ann-bench")
n, dims, nq = (int(a) for a in (sys.argv[1:] + ["100000", "512", "1000"][len(sys.argv[1:]):]))

def ours_with(scalar):
    out = subprocess.run(["cargo", "run", "--quiet", "--release", "--example", "ann_recall", "--", OUT, str(n), str(dims),
                          str(nq), scalar], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


runs = {s: ours_with(s) for s in ("f32", "f16", "i8")}
ours = runs["f32"]
base = np.fromfile(os.path.join(OUT, "base.f32"), dtype="<f4").reshape(n, dims)
queries = np.fromfile(os.path.join(OUT, "queries.f32"), dtype="<f4").reshape(nq, dims)
exact = np.fromfile(os.path.join(OUT, "exact_ids.u64"), dtype="<u8").reshape(nq, 10)
check = np.argsort(-(queries[:50] @ base.T), axis=1)[:, :10]
agree = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(check, exact[:50])])

faiss.omp_set_num_threads(os.cpu_count())
index = faiss.IndexHNSWFlat(dims, 16, faiss.METRIC_INNER_PRODUCT)
index.hnsw.efConstruction = 128
start = time.perf_counter()
index.add(base)
add_secs = time.perf_counter() - start
index.hnsw.efSearch = 128
faiss.omp_set_num_threads(1)  # one query at a time, as videovector searches
start = time.perf_counter()
found = 0
for i in range(nq):
    _, ids = index.search(queries[i:i + 1], 10)
    found += len(set(ids[0]) & set(exact[i]))
search_secs = time.perf_counter() - start

print(f"{n} clustered {dims}-d unit vectors, {nq} queries, k=10; exact ids checked by numpy on 50 queries: {agree:.3f} agreement")
print(f"{'':28}{'recall@10':>10}{'add vec/s':>12}{'queries/s':>11}")
for scalar, r in runs.items():
    name = f"videovector (usearch, {scalar})"
    print(f"{name:28}{r['recall_at_10']:>10.4f}{r['add_vectors_per_second']:>12.0f}{r['search_queries_per_second']:>11.0f}"
          f"   ({r['simd']} kernels)")
print(f"{'faiss IndexHNSWFlat (f32)':28}{found / (nq * 10):>10.4f}{n / add_secs:>12.0f}{nq / search_secs:>11.0f}")
for scalar, r in runs.items():
    print(f"speed ratio videovector ({scalar})/faiss: add {r['add_vectors_per_second'] / (n / add_secs):.2f}x, "
          f"search {r['search_queries_per_second'] / (nq / search_secs):.2f}x")
print(f"faiss {faiss.__version__}")
