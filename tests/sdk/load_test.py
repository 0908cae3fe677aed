"""A bounded load test on loopback: concurrent SDK clients search while an upload is ingested.

8 threads, each with its own `VideoVector` client, run 25 text searches each against the main
index while long_1min.mp4 (1 min of video) is uploaded into another index and processed.
Every request must succeed and only ever return media of the searched index. The p50/p99
latency and the throughput are printed in the session's summary.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import videovector
from sdkserver import MEDIA, Ingested, Server, unique, upload_and_wait

CLIENTS = 8
SEARCHES_PER_CLIENT = 25
DEADLINE_S = 180  # for all the searches together; a stuck request fails the test, not the session
QUERIES = ["a bike", "people in a street", "a red car", "cyclists racing", "a city at night", "a tree"]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p * len(sorted_values)) - 1))]


def test_concurrent_searches_while_an_upload_is_processed(
    server: Server, admin: videovector.VideoVector, main_index: videovector.Index, bikes: Ingested, figures
) -> None:
    """8 clients x 25 text searches during an ingest: zero failed requests, results only from
    the searched index, and the ingest itself completes."""
    expected = {v.video_id for v in admin.indexes.list_videos(main_index.index_id, limit=100).auto_paging_iter()}
    load_index = admin.indexes.create(name=unique("sdk-load"))
    ingest: dict[str, object] = {}

    def upload() -> None:
        try:
            with server.client() as client:
                ingest["result"] = upload_and_wait(client, MEDIA / "long_1min.mp4", "long", load_index.index_id)
        except BaseException as e:  # reported by the main thread
            ingest["error"] = e
        finally:
            ingest["ended"] = time.monotonic()

    uploader = threading.Thread(target=upload, name="load-upload")
    uploader.start()
    start_line = threading.Barrier(CLIENTS)
    deadline = time.monotonic() + DEADLINE_S

    def searcher(n: int) -> tuple[list[tuple[float, float]], list[str]]:
        spans: list[tuple[float, float]] = []
        failures: list[str] = []
        with server.client(timeout=60) as client:
            start_line.wait(timeout=60)
            for i in range(SEARCHES_PER_CLIENT):
                if time.monotonic() > deadline:
                    failures.append(f"client {n}: deadline passed after {i} searches")
                    break
                t0 = time.monotonic()
                try:
                    hits = client.search.text(main_index.index_id, query=QUERIES[(n + i) % len(QUERIES)], top_k=5)
                    strangers = {h.video_id for h in hits} - expected
                    if not hits or strangers:
                        failures.append(f"client {n} search {i}: {len(hits)} hits, from elsewhere: {strangers}")
                except Exception as e:
                    failures.append(f"client {n} search {i}: {e!r}")
                spans.append((t0, time.monotonic()))
        return spans, failures

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        outcomes = list(pool.map(searcher, range(CLIENTS)))
    wall = time.monotonic() - began
    uploader.join(timeout=600)

    spans = [s for spans, _ in outcomes for s in spans]
    failures = [f for _, fs in outcomes for f in fs]
    assert not failures, f"{len(failures)} failed requests, first ones: {failures[:5]}"
    assert len(spans) == CLIENTS * SEARCHES_PER_CLIENT

    latencies = sorted(end - start for start, end in spans)
    ended = float(ingest.get("ended", math.inf))  # type: ignore[arg-type]
    during = sum(1 for start, _ in spans if start < ended)
    figures(
        f"load: {len(spans)} text searches by {CLIENTS} SDK clients in {wall:.2f} s = "
        f"{len(spans) / wall:.1f} requests/s; latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms; "
        f"{during} of them started while long_1min.mp4 was uploading or processing"
    )

    assert not uploader.is_alive(), "the upload did not finish within 10 minutes"
    assert "error" not in ingest, f"the upload under load failed: {ingest.get('error')!r}"
    done: Ingested = ingest["result"]  # type: ignore[assignment]
    video = admin.videos.retrieve(done.video_id)
    assert (video.status, video.media_type) == ("processed", "video")
    assert done.video_id not in expected
