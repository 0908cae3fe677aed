"""Server rules behind the SDK methods that test_sdk.py covers on one path only, or not at all:
cancelling and retrying imports, cancelling a prompt run that is still running, retrying one of
its segments, `GET /auth/validate`, the SQL catalog by GET and text-to-SQL, uploads probed by
content, anonymous access only on loopback, ids that try to leave their folder, and DELETEs
that answer the same when the SDK repeats them.

Runs on the session server (conftest.py) in indexes of its own, so that nothing here changes
what test_sdk.py reads; the anonymous server and the refused start have folders of their own.
The one prompt run (bikes.mp4, uploaded as `clip.txt`, in fixed 1 s segments: 10 of them) is
cancelled right after it starts, and one of its segments is retried: one model call.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import videovector
from sdkserver import (
    IDLE_PHASES,
    IMPORT_TIMEOUT_S,
    MEDIA,
    PROMPT_TEXT,
    SCHEMA,
    RUN_TIMEOUT_S,
    DataFolder,
    Ingested,
    Server,
    assert_error,
    poll,
    raw_get,
    serve_command,
    unique,
    upload_and_wait,
)
from videovector import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ProcessingError,
    ValidationError,
    VideoVector,
)

BIKES_DURATION = 10.0
RUN_FINAL = {"completed", "completed_with_failures", "failed", "cancelled"}
# Text that is no media, whatever its name says (unique per session: no upload dedupes it).
NOT_MEDIA = f"this is a text file, not a video ({secrets.token_hex(8)})\n".encode() * 4


def ids_in(admin: VideoVector, index_id: str) -> dict[str, str]:
    """Every video of an index (through all pages), as id -> status."""
    return {v.video_id: v.status for v in admin.indexes.list_videos(index_id, limit=100).auto_paging_iter()}


def final_import(admin: VideoVector, job_id: str) -> videovector.ImportJob:
    """The import job once it is no longer pending or importing (read with retrieve, so that a
    wrong final status shows as itself instead of as wait_for_completion's exception)."""
    return poll(
        lambda: admin.import_jobs.retrieve(job_id),
        lambda j: j.status not in {"pending", "importing"},
        timeout=IMPORT_TIMEOUT_S,
        interval=0.25,
    )


def copies_under_uploads(server: Server, content: bytes) -> list[Path]:
    """Files under <data>/uploads holding exactly `content`."""
    root = server.data_dir / "uploads"
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_size == len(content) and p.read_bytes() == content]


# --------------------------------------------------------------------------------------------
# Fixtures of this module
# --------------------------------------------------------------------------------------------


@dataclass
class Clip:
    """bikes.mp4 uploaded under the name clip.txt into an index of its own."""

    index: videovector.Index
    ingested: Ingested


@pytest.fixture(scope="module")
def clip(admin: VideoVector, tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """bikes.mp4 copied to `clip.txt` and uploaded under that name into a new index."""
    index = admin.indexes.create(name=unique("sdk-rules-clip"))
    renamed = tmp_path_factory.mktemp("renamed") / "clip.txt"
    shutil.copyfile(MEDIA / "bikes.mp4", renamed)
    return Clip(index, upload_and_wait(admin, renamed, "clip", index.index_id))


@pytest.fixture(scope="module")
def rules_prompt(admin: VideoVector) -> videovector.Prompt:
    """The prompt of the cancelled run: two fields a 0.5B model answers in a few tokens."""
    return admin.prompts.create(name=unique("sdk rules"), prompt_text=PROMPT_TEXT, json_schema=SCHEMA)


@dataclass
class CancelledRun:
    started: videovector.PromptRun
    running: videovector.PromptRun  # as it was when cancelled: segmented, extracting
    refused_retry: ConflictError | None  # retry_segment sent while the run was not finished
    cancel_reply: videovector.PromptRun
    done: videovector.PromptRun
    segment_ids: list[str]  # the run's segments of the clip, in time order


@pytest.fixture(scope="module")
def cancelled_run(admin: VideoVector, clip: Clip, rules_prompt: videovector.Prompt) -> CancelledRun:
    """A run over the clip's index in fixed 1 s segments (10 segments, a model call each). As
    soon as it has segmented the clip and is extracting (a run cancelled while still pending ends
    at once, another path), a retry of its first segment is tried, then the run is cancelled and
    waited for."""
    video_id = clip.ingested.video_id
    first_segment = admin.videos.list_segments(video_id, limit=1).data[0].segment_id
    started = admin.prompt_runs.execute(
        prompt_id=rules_prompt.prompt_id,
        target={"type": "index", "index_id": clip.index.index_id},
        video_segmentation_type="fixed",
        video_segment_duration=1,
    )
    running = poll(
        lambda: admin.prompt_runs.retrieve(started.run_id),
        lambda r: r.total_segments > 0 or r.status in RUN_FINAL,
        timeout=RUN_TIMEOUT_S,
        interval=0.1,
    )
    refused = None
    try:
        admin.prompt_runs.retry_segment(started.run_id, video_id, first_segment)
    except ConflictError as e:
        refused = e
    cancel_reply = admin.prompt_runs.cancel(started.run_id)
    done = admin.prompt_runs.wait_for_completion(started.run_id, poll_interval=0.25, timeout=RUN_TIMEOUT_S)
    segments = admin.videos.list_segments(video_id, run_id=started.run_id, limit=100).auto_paging_iter()
    return CancelledRun(started, running, refused, cancel_reply, done, [s.segment_id for s in segments])


# --------------------------------------------------------------------------------------------
# Import jobs: cancel and retry
# --------------------------------------------------------------------------------------------


def test_cancelling_a_running_import_ends_it_cancelled(admin: VideoVector) -> None:
    """import_jobs.cancel while long_1min.mp4 is being processed: the reply is the job; it ends
    `cancelled` (wait_for_completion returns it, it does not raise), with no video; its media is
    not left pending or processing, and nothing processed appears in the index; cancelling again
    answers the final job unchanged."""
    index = admin.indexes.create(name=unique("sdk-rules-cancel"))
    first = admin.videos.upload(file=MEDIA / "long_1min.mp4", title="long", index_id=index.index_id)
    busy = poll(
        lambda: admin.import_jobs.retrieve(first.job_id),
        lambda j: j.status != "importing" or j.phase not in IDLE_PHASES,
        timeout=60,
        interval=0.02,
    )
    assert busy.status == "importing", f"the ingest ended before the cancel could reach it: {busy!r}"
    reply = admin.import_jobs.cancel(first.job_id)
    assert reply.job_id == first.job_id and reply.target_index_id == index.index_id, reply
    assert reply.status in {"importing", "cancelled"}, reply

    final = final_import(admin, first.job_id)
    assert final.video_ids == [], final
    media = ids_in(admin, index.index_id)
    assert not {v for v, s in media.items() if s in {"pending", "processing"}}, f"media left unfinished: {media}"
    assert "processed" not in media.values(), f"a cancelled import made a processed video: {media}"
    for output in final.outputs.items:
        try:
            assert admin.videos.retrieve(output.video_id).status not in {"pending", "processing"}, output
        except NotFoundError:
            pass  # removed outright is fine too

    assert final.status == "cancelled", (
        f"a cancelled import is reported {final.status!r} (error_message {final.error_message!r}); "
        f"the SDK's wait_for_completion raises ProcessingError on `failed`: {final!r}"
    )
    waited = admin.import_jobs.wait_for_completion(first.job_id, poll_interval=0.25, timeout=IMPORT_TIMEOUT_S)
    assert (waited.job_id, waited.status) == (first.job_id, "cancelled")
    again = admin.import_jobs.cancel(first.job_id)
    assert (again.job_id, again.status) == (first.job_id, "cancelled")
    assert first.job_id in {j.job_id for j in admin.import_jobs.list(status="cancelled")}


def test_retrying_a_failed_import_answers_a_new_import_job(admin: VideoVector, bikes: Ingested) -> None:
    """import_jobs.retry of a failed import registered by path (notvideo.mp4, the user's own
    file, which stays) answers a new ImportJob for the same file and index, which fails again
    the same way and makes no second media row; the failed job stays failed. A failed upload's
    copy is not kept, so its retry is a ConflictError that says to upload again. Retrying a
    completed import answers it unchanged; an unknown job is NotFoundError."""
    index = admin.indexes.create(name=unique("sdk-rules-retry"))
    uri = (MEDIA / "notvideo.mp4").resolve().as_uri()
    failed = admin.videos.create(title="not a video", video_uri=uri, index_id=index.index_id)
    with pytest.raises(ProcessingError):
        admin.import_jobs.wait_for_completion(failed.job_id, poll_interval=0.25, timeout=IMPORT_TIMEOUT_S)
    before = ids_in(admin, index.index_id)
    assert set(before.values()) <= {"failed"} and len(before) <= 1, before

    retried = admin.import_jobs.retry(failed.job_id)
    assert isinstance(retried, videovector.ImportJob)
    assert retried.job_id != failed.job_id, "a retry is a new import job"
    assert (retried.target_index_id, retried.source_kind) == (index.index_id, "uri"), retried
    assert retried.file_pattern == "notvideo.mp4" and retried.progress.total_files == 1, retried
    assert retried.status in {"pending", "importing", "failed"}, retried
    with pytest.raises(ProcessingError):
        admin.import_jobs.wait_for_completion(retried.job_id, poll_interval=0.25, timeout=IMPORT_TIMEOUT_S)
    assert admin.import_jobs.retrieve(retried.job_id).error_message
    assert [f.file_name for f in admin.import_jobs.iter_files(retried.job_id, failed_only=True)] == ["notvideo.mp4"]
    assert admin.import_jobs.retrieve(failed.job_id).status == "failed"
    after = ids_in(admin, index.index_id)
    assert set(after.values()) <= {"failed"} and len(after) <= 1, f"the retry made another media row: {after}"

    uploaded = admin.videos.upload(file=MEDIA / "notvideo.mp4", title="not a video", index_id=index.index_id)
    with pytest.raises(ProcessingError):
        admin.import_jobs.wait_for_completion(uploaded.job_id, poll_interval=0.25, timeout=IMPORT_TIMEOUT_S)
    with pytest.raises(ConflictError) as gone:
        admin.import_jobs.retry(uploaded.job_id)
    assert "upload it again" in str(gone.value), gone.value

    done = admin.import_jobs.retry(bikes.job.job_id)
    assert (done.job_id, done.status, done.video_ids) == (bikes.job.job_id, "completed", [bikes.video_id])
    with pytest.raises(NotFoundError):
        admin.import_jobs.retry("imp_never_made")


# --------------------------------------------------------------------------------------------
# Uploads are probed by content, not by name
# --------------------------------------------------------------------------------------------


def test_an_upload_is_probed_by_content_not_by_name(admin: VideoVector, clip: Clip, tmp_path: Path) -> None:
    """bikes.mp4 uploaded as `clip.txt` ingests as a 10 s video with segments; a text file named
    `fake.mp4` fails its import with an error that names the file and says it cannot be read as
    media, and no processed video appears for it."""
    video = admin.videos.retrieve(clip.ingested.video_id)
    assert (video.title, video.status, video.media_type) == ("clip", "processed", "video"), video
    (output,) = admin.import_jobs.outputs(clip.ingested.job.job_id).items
    assert output.file_name == "clip.txt" and abs(output.source_end_seconds - BIKES_DURATION) < 0.1, output
    segments = list(admin.videos.list_segments(video.video_id, limit=100).auto_paging_iter())
    assert len(segments) >= 2 and segments[0].start_time == 0.0, segments
    assert abs(segments[-1].end_time - BIKES_DURATION) < 0.05, segments[-1]

    fake = tmp_path / "fake.mp4"
    fake.write_bytes(NOT_MEDIA)
    index = admin.indexes.create(name=unique("sdk-rules-fake"))
    job = admin.videos.upload(file=fake, title="fake", index_id=index.index_id)
    final = final_import(admin, job.job_id)
    assert final.status == "failed" and final.video_ids == [], final
    message = final.error_message or ""
    assert "fake.mp4" in message and any(w in message.lower() for w in ("cannot", "invalid", "not")), message
    (failure,) = list(admin.import_jobs.iter_files(job.job_id, failed_only=True))
    assert failure.file_name == "fake.mp4" and failure.failure and failure.failure.get("message"), failure
    assert "processed" not in ids_in(admin, index.index_id).values()


def test_a_failed_upload_leaves_no_copy_under_uploads(server: Server, admin: VideoVector, tmp_path: Path) -> None:
    """The copy of an upload whose import failed (a text file named fake.mp4) is removed: no
    file under <data>/uploads holds its bytes once the job has failed."""
    fake = tmp_path / "fake.mp4"
    content = NOT_MEDIA + b"copy check\n"
    fake.write_bytes(content)
    index = admin.indexes.create(name=unique("sdk-rules-copy"))
    job = admin.videos.upload(file=fake, title="fake copy", index_id=index.index_id)
    assert final_import(admin, job.job_id).status == "failed"
    left = poll(lambda: copies_under_uploads(server, content), lambda found: not found, timeout=5)
    assert left == []


# --------------------------------------------------------------------------------------------
# Prompt runs: cancel while running, retry one segment
# --------------------------------------------------------------------------------------------


def test_cancelling_a_running_prompt_run(admin: VideoVector, cancelled_run: CancelledRun, clip: Clip) -> None:
    """A run cancelled while it extracts its 10 fixed 1 s segments ends `cancelled`
    (wait_for_completion returns it) with fewer results than segments; a segment retry asked
    while it ran was refused with 409 (ConflictError); cancelling the finished run again answers
    it unchanged."""
    r = cancelled_run
    assert r.started.status not in RUN_FINAL, r.started
    assert r.running.status == "processing" and r.running.total_segments == 10, r.running
    assert r.refused_retry is not None, "retry_segment on an unfinished run was accepted"
    assert r.refused_retry.status_code == 409 and "finished" in r.refused_retry.message, r.refused_retry
    assert r.cancel_reply.run_id == r.started.run_id and r.cancel_reply.status in {"pending", "processing", "cancelled"}
    assert (r.done.run_id, r.done.status, r.done.total_segments) == (r.started.run_id, "cancelled", 10), r.done
    assert len(r.segment_ids) == 10, f"the run's own fixed 1 s segments of the 10 s clip: {len(r.segment_ids)}"
    results = list(admin.prompt_runs.list_results(r.done.run_id, video_id=clip.ingested.video_id).auto_paging_iter())
    assert len(results) < len(r.segment_ids), "the cancel stopped nothing"
    assert r.done.completed_segments < len(r.segment_ids), r.done
    assert {x.segment_id for x in results} <= set(r.segment_ids)
    again = admin.prompt_runs.cancel(r.done.run_id)
    assert (again.run_id, again.status) == (r.done.run_id, "cancelled")
    assert admin.prompt_runs.retrieve(r.done.run_id).status == "cancelled"


def test_retrying_a_segment_of_a_finished_run(
    admin: VideoVector, cancelled_run: CancelledRun, clip: Clip, bikes: Ingested
) -> None:
    """retry_segment on a segment the cancelled run left undone answers 202 a pending retry (the
    same Idempotency-Key answers the same retry); get_segment_retry_status follows it to
    `completed`, after which the run has a schema-valid result for that segment and is still
    `cancelled`. A video outside the run is NotFoundError, a segment of another video
    ValidationError, and a retry asked about under another segment NotFoundError."""
    run_id, video_id = cancelled_run.done.run_id, clip.ingested.video_id
    before = {x.segment_id for x in admin.prompt_runs.list_results(run_id, video_id=video_id).auto_paging_iter()}
    undone = [s for s in cancelled_run.segment_ids if s not in before]
    assert undone, "the cancelled run left no segment undone"
    segment_id = undone[-1]

    key = f"prompt-run-segment-retry:{secrets.token_hex(16)}"
    retry = admin.prompt_runs.retry_segment(run_id, video_id, segment_id, idempotency_key=key)
    assert (retry.run_id, retry.video_id, retry.segment_id) == (run_id, video_id, segment_id), retry
    assert retry.retry_id and retry.status in {"pending", "processing", "completed"} and retry.message, retry
    replay = admin.prompt_runs.retry_segment(run_id, video_id, segment_id, idempotency_key=key)
    assert replay.retry_id == retry.retry_id, "a repeated retry with the same key started another one"

    status = poll(
        lambda: admin.prompt_runs.get_segment_retry_status(run_id, video_id, segment_id, retry.retry_id),
        lambda s: s.status in {"completed", "failed", "cancelled"},
        timeout=RUN_TIMEOUT_S,
    )
    assert (status.retry_id, status.status, status.error) == (retry.retry_id, "completed", None), status
    assert status.started_at and status.completed_at, status
    after = {x.segment_id: x for x in admin.prompt_runs.list_results(run_id, video_id=video_id).auto_paging_iter()}
    assert set(after) == before | {segment_id}, "the retry wrote a result for that segment only"
    assert admin.prompts.test_schema(json_schema=SCHEMA, sample_data=after[segment_id].metadata).valid
    assert admin.prompt_runs.retrieve(run_id).status == "cancelled"

    with pytest.raises(NotFoundError):
        admin.prompt_runs.retry_segment(run_id, bikes.video_id, segment_id)
    other_segment = admin.videos.list_segments(bikes.video_id, limit=1).data[0].segment_id
    with pytest.raises(ValidationError) as wrong:
        admin.prompt_runs.retry_segment(run_id, video_id, other_segment)
    assert wrong.value.status_code in (400, 422), wrong.value
    elsewhere = next(s for s in cancelled_run.segment_ids if s != segment_id)
    with pytest.raises(NotFoundError):
        admin.prompt_runs.get_segment_retry_status(run_id, video_id, elsewhere, retry.retry_id)


# --------------------------------------------------------------------------------------------
# Routes outside the SDK: /auth/validate, the SQL catalog by GET, text to SQL
# --------------------------------------------------------------------------------------------


def test_auth_validate_names_the_callers_key_and_scopes(server: Server, admin: VideoVector) -> None:
    """GET /auth/validate answers valid with the caller's own key id and scopes (the bootstrap
    admin key, or a `search` key), and 401 in the envelope without a key or with an unknown one."""
    (bootstrap,) = [k for k in admin.api_keys.list() if k.name == "admin (bootstrap)"]
    searcher = admin.api_keys.create(name=unique("sdk validate"), scopes=["search"])
    try:
        with server.http() as http:
            r = http.get("/auth/validate")
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["valid"], body["key_id"], body["scopes"]) == (True, bootstrap.key_id, ["admin"]), body
        with server.http(api_key=searcher.key) as http:
            r = http.get("/auth/validate")
            assert r.status_code == 200 and r.json()["valid"] is True, r.text
            assert (r.json()["key_id"], r.json()["scopes"]) == (searcher.key_id, ["search"])
        with server.http(api_key=None) as http:
            assert_error(http.get("/auth/validate"), {401})
        with server.http(api_key="sk_live_" + "0" * 48) as http:
            assert_error(http.get("/auth/validate"), {401})
    finally:
        admin.api_keys.delete(searcher.key_id)


def test_sql_catalog_by_get(server: Server, clip: Clip) -> None:
    """GET /search/sql/{index}/catalog answers what POST with an empty body answers: the sqlite
    dialect, the media and segments tables with their columns, the limits; an unknown index is 404."""
    idx = clip.index.index_id
    with server.http() as http:
        got = http.get(f"/search/sql/{idx}/catalog")
        posted = http.post(f"/search/sql/{idx}/catalog", json={})
        assert got.status_code == 200 and posted.status_code == 200, (got.text, posted.text)
        assert got.json() == posted.json()
        catalog = got.json()
        assert catalog["dialect"] == "sqlite" and catalog["default_query"], catalog
        tables = {t["name"]: t for t in catalog["tables"]}
        assert {"media", "segments"} <= set(tables), list(tables)
        assert {"video_id", "start_time"} <= {c["name"] for c in tables["segments"]["columns"]}
        assert catalog["limits"]["max_result_limit"] >= catalog["limits"]["default_result_limit"] > 0
        assert_error(http.get("/search/sql/idx_never_made/catalog"), {404})


def test_sql_generate_drafts_a_query_that_runs(server: Server, clip: Clip) -> None:
    """POST /search/sql/{index}/generate turns "count the segments of each media item" into one
    SELECT with an explanation (which table the 0.5B model picks is its judgement, not the
    server's contract), within the token budget; the query then executes with 200 and rows."""
    idx = clip.index.index_id
    with server.http(timeout=RUN_TIMEOUT_S) as http:
        drafted = http.post(f"/search/sql/{idx}/generate", json={"instruction": "count the segments of each media item"})
        assert drafted.status_code == 200, drafted.text
        draft = drafted.json()
        assert draft["query"].upper().startswith("SELECT"), draft
        assert draft["explanation"], draft
        executed = http.post(f"/search/sql/{idx}", json={"query": draft["query"]})
        assert executed.status_code == 200, executed.text
        assert executed.json()["columns"] and executed.json()["rows"], executed.json()
        assert_error(http.post(f"/search/sql/{idx}/generate", json={"instruction": ""}), {400, 422})


# --------------------------------------------------------------------------------------------
# Anonymous access: loopback only
# --------------------------------------------------------------------------------------------


def test_anonymous_access_is_for_loopback_only(data_folder: DataFolder, tmp_path: Path) -> None:
    """`serve --allow-anonymous --listen 0.0.0.0:0` refuses to start (non-zero exit, a message
    that names loopback, never a `serving` line); on 127.0.0.1 a request without a key is served
    as admin, while an unknown key is still 401."""
    cmd = serve_command(tmp_path / "refused", data_folder.clip_dir, "--allow-anonymous", "--listen", "0.0.0.0:0")
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert refused.returncode != 0, refused
    assert "loopback" in refused.stderr, refused.stderr
    assert "serving" not in refused.stdout, refused.stdout

    server = data_folder.start(extra_args=["--allow-anonymous"])
    with server.http(api_key=None) as anonymous:
        created = anonymous.post("/indexes", json={"name": unique("anonymous")})
        assert created.status_code == 201, created.text
        listed = anonymous.get("/indexes")
        assert listed.status_code == 200 and created.json()["index_id"] in {i["index_id"] for i in listed.json()}
        validated = anonymous.get("/auth/validate")
        assert validated.status_code == 200 and validated.json()["key_id"] is None, validated.text
        assert validated.json()["scopes"] == ["admin"], validated.text
    with server.http(api_key="sk_live_" + "0" * 48) as stranger:
        assert_error(stranger.get("/indexes"), {401})
    assert server.proc.poll() is None, server.stderr_tail()


# --------------------------------------------------------------------------------------------
# Ids that try to leave their folder
# --------------------------------------------------------------------------------------------

TRAVERSALS = [
    "..%2F..%2Fetc%2Fpasswd",
    "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%5C..%5Cetc%5Cpasswd",
    "..%2Fx",
    "%2Fetc%2Fpasswd",
]
RAW_TRAVERSALS = ["../x", "../../../../etc/passwd"]  # sent unencoded, as is


def test_traversal_ids_get_an_error_envelope_never_file_bytes(server: Server, bikes: Ingested) -> None:
    """Ids like `..%2F..%2Fetc%2Fpasswd` or a raw `../x` in GET /videos/{id},
    /videos/segments/{id}/thumbnail, /videos/{id}/gif and /media/{token} (also a real signed
    token with its video id swapped) answer 4xx in the error envelope, never bytes of a file."""
    passwd = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").exists() else b"root:"
    with server.client() as client:
        segment = client.videos.list_segments(bikes.video_id, limit=1).data[0]
        signed = client.videos.get_signed_url(segment.gcs_uri).signed_url
    token = signed.rsplit("/media/", 1)[1].split("#")[0]
    _, expires, sig = token.rsplit(".", 2)
    targets = []
    for bad in TRAVERSALS + RAW_TRAVERSALS:
        targets += [f"/videos/{bad}", f"/videos/segments/{bad}/thumbnail", f"/videos/{bad}/gif", f"/media/{bad}"]
        targets.append(f"/media/{bad}.{expires}.{sig}")
    for target in targets:
        status, headers, body = raw_get(server, target)
        assert 400 <= status < 500, f"GET {target}: {status} {body[:200]!r}"
        assert headers.get("content-type", "").startswith("application/json"), (target, headers)
        assert b"root:" not in body and passwd[:64] not in body, f"GET {target} served file bytes: {body[:200]!r}"
        error = json.loads(body)["error"]
        assert error["code"] and error["message"], (target, error)


# --------------------------------------------------------------------------------------------
# Repeated DELETEs answer the same (the SDK retries them). Last: deletes this module's prompt.
# --------------------------------------------------------------------------------------------


def test_a_repeated_delete_answers_the_same(
    server: Server, admin: VideoVector, rules_prompt: videovector.Prompt, cancelled_run: CancelledRun
) -> None:
    """DELETE of an unused prompt, of a used prompt with force, and of an API key, each sent
    twice: the second answers 200 with the same message as the first, and the thing stays gone
    (or deactivated)."""
    unused = admin.prompts.create(name=unique("sdk rules unused"), prompt_text=PROMPT_TEXT, json_schema=SCHEMA)
    first = admin.prompts.delete(unused.prompt_id)
    assert admin.prompts.delete(unused.prompt_id).message == first.message
    with pytest.raises(NotFoundError):
        admin.prompts.retrieve(unused.prompt_id)

    assert admin.prompts.get_usage(rules_prompt.prompt_id).is_in_use
    first = admin.prompts.delete(rules_prompt.prompt_id, force=True)
    assert admin.prompts.delete(rules_prompt.prompt_id, force=True).message == first.message
    assert rules_prompt.prompt_id not in {p.prompt_id for p in admin.prompts.list(active_only=True).prompts}
    assert admin.prompt_runs.retrieve(cancelled_run.done.run_id).status == "cancelled"

    key = admin.api_keys.create(name=unique("sdk rules delete"), scopes=["read"])
    first = admin.api_keys.delete(key.key_id)
    assert admin.api_keys.delete(key.key_id).message == first.message
    with pytest.raises(NotFoundError):
        admin.api_keys.retrieve(key.key_id)
    with server.client(key.key) as gone, pytest.raises(AuthenticationError):
        gone.indexes.list()
