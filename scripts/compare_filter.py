"""Filtered vector search and JSON filters in PostgreSQL 16 + pgvector 0.6.2 (the `pgserver`
wheel), on the data `cargo bench --bench filter` exports (VV_BENCH_EXPORT): the same 100,000
vectors, result documents, query vector and filters as our bench.

For each filter: how many of the top 10 come back and their recall against an exact search of
the filtered set (numpy), and p50 latency; HNSW (m 16, ef_construction 64) at ef_search 40 (the
default) and 200; and a page of 50 filter matches through a GIN index (jsonb_path_ops).

usage: compare_filter.py EXPORT_DIR
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pgserver
import psycopg

FILTERS = {
    # Our conditions: scene.people[].emotion equals happy, score greater_than 0.5.
    "broad": (
        "meta @> '{\"scene\": {\"people\": [{\"emotion\": \"happy\"}]}}' AND (meta->>'score')::float8 > 0.5",
        lambda d: any(p["emotion"] == "happy" for p in d["scene"]["people"]) and d["score"] > 0.5,
    ),
    # scene.location equals harbour, count equals 7.
    "selective": (
        "meta @> '{\"scene\": {\"location\": \"harbour\"}, \"count\": 7}'",
        lambda d: d["scene"]["location"] == "harbour" and d["count"] == 7,
    ),
}


def p50(f, n=30):
    f()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    times.sort()
    return out, times[len(times) // 2] * 1e3


def main(export: Path):
    q = np.fromfile(export / "query.f32", dtype="<f4")
    vectors = np.fromfile(export / "vectors.f32", dtype="<f4").reshape(-1, q.shape[0])
    docs = [json.loads(line) for line in (export / "docs.jsonl").read_text().splitlines()]
    n, dims = vectors.shape
    print(f"{n} vectors of {dims} dimensions, {len(docs)} documents")
    with tempfile.TemporaryDirectory() as pgdata:
        srv = pgserver.get_server(pgdata, cleanup_mode="stop")
        with psycopg.connect(srv.get_uri(), autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
            c.execute(f"CREATE TABLE items (id int PRIMARY KEY, meta jsonb NOT NULL, embedding vector({dims}) NOT NULL)")
            t = time.perf_counter()
            with c.cursor().copy("COPY items (id, meta, embedding) FROM STDIN") as copy:
                for i in range(n):
                    copy.write_row((i, json.dumps(docs[i]), "[" + ",".join(f"{x:.7g}" for x in vectors[i]) + "]"))
            print(f"load: {time.perf_counter() - t:.1f} s")
            t = time.perf_counter()
            c.execute("CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)")
            c.execute("CREATE INDEX ON items USING gin (meta jsonb_path_ops)")
            c.execute("ANALYZE items")
            print(f"indexes (HNSW + GIN): {time.perf_counter() - t:.1f} s")
            qv = "[" + ",".join(f"{x:.7g}" for x in q) + "]"
            scores = vectors @ q
            for name, (where, passes) in FILTERS.items():
                ok = np.array([passes(d) for d in docs])
                exact = [int(i) for i in np.argsort(-np.where(ok, scores, -np.inf))[:10]]
                print(f"{name}: {int(ok.sum())} of {n} pass")
                for ef in (40, 200):
                    c.execute(f"SET hnsw.ef_search = {ef}")
                    sql = f"SELECT id FROM items WHERE {where} ORDER BY embedding <=> %s::vector LIMIT 10"
                    plan = " ".join(r[0] for r in c.execute("EXPLAIN " + sql, (qv,)).fetchall())
                    got, ms = p50(lambda: [r[0] for r in c.execute(sql, (qv,)).fetchall()])
                    recall = len(set(got) & set(exact)) / 10
                    used = "hnsw" if "embedding_idx" in plan else "no hnsw"
                    print(f"  pgvector top 10, ef_search {ef} ({used}): {len(got)} returned, recall {recall:.2f}, p50 {ms:.2f} ms")
                page = f"SELECT id, meta FROM items WHERE {where} ORDER BY id LIMIT 50"
                got, ms = p50(lambda: c.execute(page).fetchall())
                print(f"  filter page of 50 (GIN): {len(got)} rows, p50 {ms:.2f} ms")
        srv.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
