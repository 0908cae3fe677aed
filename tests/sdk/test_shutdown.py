"""Durability of `videovector serve` across a stop: SIGTERM and SIGKILL in the middle of an
ingest, a request in flight at SIGTERM, and `Idempotency-Key` replies replayed after a restart.

Each test has a data folder of its own (`data_folder`) and starts its own servers on it, one after
the other, all with the same admin key. The ingest interrupted is long_1min.mp4 (60 s, about 2 s
of work for the debug build): the stop is sent as soon as its import job reports `importing` in a
working phase, and the event log (job.started twice) shows afterwards that the stop did interrupt
it and the restarted server ran it again.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import socket
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import videovector
from sdkserver import (
    IDLE_PHASES,
    MEDIA,
    PROMPT_TEXT,
    SCHEMA,
    DataFolder,
    Server,
    poll,
    read_sse,
    unique,
    upload_and_wait,
)
from videovector import IdempotencyError, VideoVector

LONG = MEDIA / "long_1min.mp4"
LONG_DURATION = 60.0
# Bounds of this file: a stop after SIGTERM, and the resumed ingest of long_1min.mp4.
EXIT_TIMEOUT_S = 30
RESUME_TIMEOUT_S = 120
ROCKET_B64 = base64.b64encode((MEDIA / "rocket.jpg").read_bytes()).decode()


def ids_in(client: VideoVector, index_id: str) -> dict[str, str]:
    """Every video of an index (through all pages), as id -> status."""
    return {v.video_id: v.status for v in client.indexes.list_videos(index_id, limit=100).auto_paging_iter()}


def sql_media(server: Server, index_id: str) -> dict[str, str]:
    """Every media row of an index, failed ones included, as id -> the engine's status
    (`completed` for what the API calls `processed`), from SQL search."""
    with server.http() as http:
        r = http.post(f"/search/sql/{index_id}", json={"query": "SELECT video_id, status FROM media"})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert len(rows) == len({row[0] for row in rows}), f"a media row twice: {rows}"
    return {row[0]: row[1] for row in rows}


def start_long_ingest(client: VideoVector, index_id: str) -> videovector.ImportJob:
    """Upload long_1min.mp4 and return its import job once it reports `importing` in a working
    phase (the engine has claimed it and is reading the file)."""
    first = client.videos.upload(file=LONG, title="long", index_id=index_id)
    busy = poll(
        lambda: client.import_jobs.retrieve(first.job_id),
        lambda j: j.status != "importing" or j.phase not in IDLE_PHASES,
        timeout=60,
        interval=0.02,
    )
    assert busy.status == "importing", f"the ingest ended before the stop could reach it: {busy!r}"
    return busy


def wait_exit(server: Server, timeout: float = EXIT_TIMEOUT_S) -> int:
    try:
        return server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the server did not exit within {timeout} s of the signal") from None


def assert_ingested_once(server: Server, client: VideoVector, job_id: str, index_id: str) -> str:
    """The import job, resumed after a stop, completes with one video: the only media of the
    index (SQL sees no failed or half-made second row), nothing in the playground, one import job,
    segments that tile [0, duration] without repeats, searchable; the event log shows the job
    started twice (the stop interrupted it) and the media made once. Returns the video id."""
    job = client.import_jobs.wait_for_completion(job_id, poll_interval=0.25, timeout=RESUME_TIMEOUT_S)
    assert job.job_id == job_id and job.status == "completed", job
    assert len(job.video_ids) == 1 and job.progress.failed == 0 and not job.failed_files, job
    video_id = job.video_ids[0]
    assert ids_in(client, index_id) == {video_id: "processed"}
    assert sql_media(server, index_id) == {video_id: "completed"}
    assert [v.video_id for v in client.videos.list_playground(limit=100).auto_paging_iter()] == []
    assert [j.job_id for j in client.import_jobs.list()] == [job_id], "one upload, one import job"

    (output,) = client.import_jobs.outputs(job_id).items
    duration = output.source_end_seconds
    assert output.video_id == video_id and abs(duration - LONG_DURATION) < 0.1, output
    segments = list(client.videos.list_segments(video_id, limit=100).auto_paging_iter())
    assert segments and len({s.segment_id for s in segments}) == len(segments), "a segment twice"
    assert segments[0].start_time == 0.0, segments[0]
    for prev, nxt in zip(segments, segments[1:], strict=False):
        assert abs(prev.end_time - nxt.start_time) < 1e-6, f"gap or overlap at {prev.end_time} / {nxt.start_time}"
    assert abs(segments[-1].end_time - duration) < 0.05, (segments[-1], duration)

    hits = client.search.text(index_id, query="a video", top_k=5)
    assert video_id in {h.video_id for h in hits}, [h.video_id for h in hits]

    events = [e.event for e in read_sse(server, {"video_ids": video_id}, last_event_id="0", idle_s=1.5)]
    assert events.count("job.started") >= 2, f"the stop did not interrupt the ingest (events: {events})"
    assert events.count("media.created") == 1, events
    assert events.count("job.completed") == 1 and events.count("media.processing.completed") == 1, events
    assert "job.failed" not in events and "media.processing.failed" not in events, events
    return video_id


# --------------------------------------------------------------------------------------------
# SIGTERM
# --------------------------------------------------------------------------------------------


def test_sigterm_during_an_ingest_exits_0_and_the_job_resumes(data_folder: DataFolder) -> None:
    """SIGTERM while long_1min.mp4 is being processed: the server exits 0 in bounded time; a
    new server on the folder answers the same import job, which completes with exactly one video
    whose segments tile [0, 60 s]."""
    server = data_folder.start()
    with server.client() as client:
        index = client.indexes.create(name=unique("shutdown-term"))
        job = start_long_ingest(client, index.index_id)
        server.proc.send_signal(signal.SIGTERM)
        assert wait_exit(server) == 0, server.stderr_tail()

    again = data_folder.start()
    with again.client() as client:
        survived = client.import_jobs.retrieve(job.job_id)
        assert (survived.job_id, survived.target_index_id) == (job.job_id, index.index_id)
        assert survived.status in {"pending", "importing", "completed"}, survived
        assert_ingested_once(again, client, job.job_id, index.index_id)
    assert again.proc.poll() is None, again.stderr_tail()


def _open_request(server: Server, method: str, path: str, head_of_body: bytes, length: int) -> socket.socket:
    """Send a request's head and the first bytes of its `length`-byte JSON body; the rest is
    sent later on the returned socket."""
    url = urlsplit(server.base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    head = (
        f"{method} {url.path}{path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
        f"X-API-Key: {server.admin_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    sock.sendall(head + head_of_body)
    return sock


def _read_reply(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of the reply on `sock` (read until the server closes or the
    body is complete)."""
    reply = b""
    while True:
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not data:
            break
        reply += data
        head, sep, body = reply.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if sep and length and len(body) >= int(length.group(1)):
            break
    status = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    assert status, f"no HTTP reply to the request in flight: {reply[:300]!r}"
    return int(status.group(1)), json.loads(reply.partition(b"\r\n\r\n")[2] or b"null")


def test_sigterm_lets_a_request_in_flight_finish(data_folder: DataFolder) -> None:
    """A request whose body is still arriving when SIGTERM comes is served to the end: the
    server waits for it, answers 201, then exits 0, and the index it made is there after a restart."""
    server = data_folder.start()
    name = unique("in-flight")
    body = json.dumps({"name": name}).encode()
    half = len(body) // 2
    with _open_request(server, "POST", "/indexes", body[:half], len(body)) as sock:
        time.sleep(0.5)  # the server has read the head and waits in the handler for the body
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.proc.poll() is None, f"the server exited ({server.proc.returncode}) with a request in flight"
        sock.sendall(body[half:])
        status, created = _read_reply(sock)
    assert status == 201, (status, created)
    assert created["name"] == name and created["index_id"], created
    assert wait_exit(server) == 0, server.stderr_tail()

    again = data_folder.start()
    with again.client() as client:
        kept = client.indexes.retrieve(created["index_id"])
        assert (kept.name, kept.created_at) == (name, created["created_at"])


# --------------------------------------------------------------------------------------------
# SIGKILL
# --------------------------------------------------------------------------------------------


def test_sigkill_during_an_ingest_loses_nothing_stored(data_folder: DataFolder) -> None:
    """kill -9 while long_1min.mp4 is being processed: the restarted server opens the folder
    (same admin key), the index, the prompt and an image ingested before the kill are intact and
    searchable, and the interrupted job resumes and completes without a duplicate video."""
    server = data_folder.start()
    with server.client() as client:
        index = client.indexes.create(name=unique("shutdown-kill"))
        prompt = client.prompts.create(
            name=unique("kill prompt"), prompt_text=PROMPT_TEXT, json_schema=SCHEMA, description="before the kill"
        )
        rocket = upload_and_wait(client, MEDIA / "rocket.jpg", "rocket", index.index_id)
        rocket_segments = [s.segment_id for s in client.videos.list_segments(rocket.video_id).auto_paging_iter()]
        (rocket_hit,) = client.search.image(index.index_id, image_data=ROCKET_B64, top_k=10)
        job = start_long_ingest(client, index.index_id)
        server.proc.send_signal(signal.SIGKILL)
        assert wait_exit(server) == -signal.SIGKILL

    again = data_folder.start()
    with again.client() as client:
        kept = client.indexes.retrieve(index.index_id)
        assert (kept.name, kept.created_at) == (index.name, index.created_at)
        assert [i.index_id for i in client.indexes.list(include_defaults=False)] == [index.index_id]
        stored = client.prompts.retrieve(prompt.prompt_id)
        assert (stored.name, stored.prompt_text, stored.description, stored.created_at) == (
            prompt.name,
            PROMPT_TEXT,
            "before the kill",
            prompt.created_at,
        )
        assert stored.json_schema == prompt.json_schema and stored.is_active
        assert prompt.prompt_id in {p.prompt_id for p in client.prompts.list(include_defaults=False).prompts}

        # The long video: the job survives, resumes and completes, once.
        survived = client.import_jobs.retrieve(job.job_id)
        assert survived.status in {"pending", "importing", "completed"}, survived
        long_job = client.import_jobs.wait_for_completion(job.job_id, poll_interval=0.25, timeout=RESUME_TIMEOUT_S)
        assert long_job.status == "completed" and len(long_job.video_ids) == 1, long_job
        long_id = long_job.video_ids[0]
        assert ids_in(client, index.index_id) == {rocket.video_id: "processed", long_id: "processed"}
        assert sql_media(again, index.index_id) == {rocket.video_id: "completed", long_id: "completed"}
        assert client.import_jobs.retrieve(rocket.job.job_id).video_ids == [rocket.video_id]

        # The image made before the kill: same segments, and its vector is still searched: its own
        # picture finds its segment with the score it had before (the tiny CLIP scores every
        # picture near 1, so the rank among the long video's segments says nothing).
        after = [s.segment_id for s in client.videos.list_segments(rocket.video_id).auto_paging_iter()]
        assert after == rocket_segments
        hits = client.search.image(index.index_id, image_data=ROCKET_B64, top_k=10)
        found = [h for h in hits if h.video_id == rocket.video_id]
        assert [h.result_id for h in found] == [rocket_hit.result_id], [(h.video_id, h.result_id) for h in hits]
        assert abs(found[0].similarity_score - rocket_hit.similarity_score) < 1e-6, (found[0], rocket_hit)

        segments = list(client.videos.list_segments(long_id, limit=100).auto_paging_iter())
        assert segments[0].start_time == 0.0 and abs(segments[-1].end_time - LONG_DURATION) < 0.05, segments
        for prev, nxt in zip(segments, segments[1:], strict=False):
            assert abs(prev.end_time - nxt.start_time) < 1e-6, f"gap or overlap at {prev.end_time} / {nxt.start_time}"
        assert len({s.segment_id for s in segments}) == len(segments)

        events = [e.event for e in read_sse(again, {"video_ids": long_id}, last_event_id="0", idle_s=1.5)]
        assert events.count("job.started") >= 2, f"the kill did not interrupt the ingest (events: {events})"
        assert events.count("media.created") == 1 and events.count("job.completed") == 1, events
        bootstrap = [k for k in client.api_keys.list() if k.name == "admin (bootstrap)"]
        assert len(bootstrap) == 1, f"the same admin key stored twice: {bootstrap}"
    assert again.proc.poll() is None, again.stderr_tail()


# --------------------------------------------------------------------------------------------
# Idempotency-Key replies are on disk
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_an_idempotency_key_replays_after_a_restart(data_folder: DataFolder, stop: signal.Signals) -> None:
    """An index create and an upload with fixed keys, then a stop (SIGTERM or kill -9) and a
    restart: the same requests answer the same index and import job and make nothing; the same
    keys with other fields are IdempotencyError."""
    name = unique("replayed")
    index_key = f"index-create:{secrets.token_hex(16)}"
    upload_key = f"import-job-upload:{secrets.token_hex(16)}"
    server = data_folder.start()
    with server.client() as client:
        created = client.indexes.create(name=name, idempotency_key=index_key)
        first = client.videos.upload(
            file=MEDIA / "rocket.jpg", title="rocket", index_id=created.index_id, idempotency_key=upload_key
        )
        done = client.import_jobs.wait_for_completion(first.job_id, poll_interval=0.25, timeout=RESUME_TIMEOUT_S)
        assert done.status == "completed" and len(done.video_ids) == 1, done
    server.proc.send_signal(stop)
    assert wait_exit(server) == (0 if stop == signal.SIGTERM else -signal.SIGKILL), server.stderr_tail()

    again = data_folder.start()
    with again.client() as client:
        replay = client.indexes.create(name=name, idempotency_key=index_key)
        assert (replay.index_id, replay.name, replay.created_at) == (created.index_id, name, created.created_at)
        with pytest.raises(IdempotencyError) as conflict:
            client.indexes.create(name=name + "-other", idempotency_key=index_key)
        assert conflict.value.status_code == 422, conflict.value
        names = [i.name for i in client.indexes.list(include_defaults=False)]
        assert names == [name], f"a replay or the refused request made an index: {names}"

        upload = client.videos.upload(
            file=MEDIA / "rocket.jpg", title="rocket", index_id=created.index_id, idempotency_key=upload_key
        )
        assert upload.job_id == first.job_id
        with pytest.raises(IdempotencyError):
            client.videos.upload(
                file=MEDIA / "rocket.jpg", title="another", index_id=created.index_id, idempotency_key=upload_key
            )
        assert ids_in(client, created.index_id) == {done.video_ids[0]: "processed"}
        assert [j.job_id for j in client.import_jobs.list()] == [first.job_id]
    assert again.proc.poll() is None, again.stderr_tail()
