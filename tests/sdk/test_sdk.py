"""The official Python SDK (`videovector==2.0.0`), unchanged, against `videovector serve`.

Every implemented SDK method is called the way the SDK calls it (import cancel and retry, and the
real paths of run cancel and segment retry, in test_sdk_rules.py: COVERAGE.md), and each test
checks what the engine did, not only that nothing raised. Routes the SDK has no method for (SQL search, the event stream, GIF and thumbnail bytes,
malformed bodies) are driven with httpx.

Work is kept small for two CPU cores: one upload of bikes.mp4, a few still images, and prompt
runs over one 1-segment image each (main run, `videos.process`, `workflow.process`).
Connectors, exports, webhooks and connector imports are not implemented yet and not tested.
"""

from __future__ import annotations

import base64
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import videovector
from sdkserver import (
    IMPORT_TIMEOUT_S,
    KEY_RE,
    MEDIA,
    RUN_TIMEOUT_S,
    Ingested,
    Server,
    assert_error,
    poll,
    post_oversized,
    read_sse,
    unique,
    upload_and_wait,
    wait_import,
)
from videovector import (
    AuthenticationError,
    AuthorizationError,
    BatchVideoSegmentsTarget,
    ConflictError,
    IdempotencyError,
    NotFoundError,
    ProcessingError,
    ValidationError,
    VideoVector,
    VideoVectorError,
)

# bikes.mp4: hard cuts at these times (fixtures/ground_truth.json), 10.0 s long.
BIKES_CUTS = [1.20, 3.04, 5.48, 7.48, 9.68]
BIKES_DURATION = 10.0

# The prompt every run uses: enum and scalar fields a 0.5B model answers in a few tokens.
SCENE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "place": {
            "type": "string",
            "enum": ["sky", "street", "garden", "kitchen"],
            "description": "where the picture was taken",
        },
        "mood": {"type": "string", "enum": ["calm", "tense", "joyful"], "description": "the feeling of the picture"},
        "outdoor": {"type": "boolean", "description": "whether it is outdoors"},
        "people": {"type": "integer", "description": "how many people can be seen"},
    },
    "required": ["place", "mood", "outdoor", "people"],
}
VIDEO_LEVEL: dict[str, Any] = {
    "instructions_text": "Say how busy the picture is as a whole.",
    "json_schema": {
        "type": "object",
        "properties": {"overall": {"type": "string", "enum": ["quiet", "busy"]}},
        "required": ["overall"],
    },
    # Not one of the SDK's two documented keys: examples 04 and 11 send it, the server must accept it.
    "included_segment_fields": ["place", "mood"],
}
SEMANTIC_INDEXING = {"disabled_segment_fields": ["people"], "disabled_video_level_fields": []}
PROMPT_TEXT = "Look at the picture and fill in every field from what can be seen."

DELETION_STATES = {"draining", "deleting", "deleted"}
RUN_DONE = {"completed", "completed_with_failures"}
ROCKET_UPLOAD_KEY = f"import-job-upload:{secrets.token_hex(16)}"


def b64(name: str) -> str:
    return base64.b64encode((MEDIA / name).read_bytes()).decode()


def ids_in(admin: VideoVector, index_id: str) -> dict[str, str]:
    """Every video of an index (through all pages), as id -> status."""
    return {v.video_id: v.status for v in admin.indexes.list_videos(index_id, limit=100).auto_paging_iter()}


def playground_ids(admin: VideoVector) -> set[str]:
    return {v.video_id for v in admin.videos.list_playground(limit=100).auto_paging_iter()}


def metadata_of(result: videovector.SearchResult) -> dict[str, Any]:
    """The extracted fields a search hit carries (`extracted_metadata`, else `metadata`)."""
    meta = result.extracted_metadata or result.metadata
    assert isinstance(meta, dict), f"a filter hit without its metadata: {result!r}"
    return meta


# --------------------------------------------------------------------------------------------
# Session fixtures of this module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rocket(admin: VideoVector, main_index: videovector.Index) -> Ingested:
    """rocket.jpg (one still image, one segment) in the main index, uploaded with a known key."""
    return upload_and_wait(
        admin, MEDIA / "rocket.jpg", "rocket", main_index.index_id, idempotency_key=ROCKET_UPLOAD_KEY
    )


@pytest.fixture(scope="session")
def flower(admin: VideoVector) -> Ingested:
    """flower.jpg uploaded without an index: it lands in the playground."""
    return upload_and_wait(admin, MEDIA / "flower.jpg", "flower", None)


@pytest.fixture(scope="session")
def prompt(admin: VideoVector) -> videovector.Prompt:
    """The prompt of every run, with a video-level part and a field kept out of semantic indexing."""
    return admin.prompts.create(
        name=unique("sdk scene"),
        prompt_text=PROMPT_TEXT,
        json_schema=SCENE_SCHEMA,
        description="scene labels for the SDK tests",
        video_level=VIDEO_LEVEL,
        semantic_indexing=SEMANTIC_INDEXING,
    )


@dataclass
class Run:
    started: videovector.PromptRun
    done: videovector.PromptRun


@pytest.fixture(scope="session")
def run(admin: VideoVector, prompt: videovector.Prompt, rocket: Ingested, main_index: videovector.Index) -> Run:
    """The prompt run over rocket.jpg (a `videos` target in the main index), waited for."""
    started = admin.prompt_runs.execute(
        prompt_id=prompt.prompt_id,
        target={"type": "videos", "video_ids": [rocket.video_id], "index_id": main_index.index_id},
        processing_model="gemini-2.5-flash",
    )
    done = admin.prompt_runs.wait_for_completion(started.run_id, poll_interval=1, timeout=RUN_TIMEOUT_S)
    return Run(started, done)


@pytest.fixture(scope="session")
def rocket_result(admin: VideoVector, run: Run, rocket: Ingested) -> videovector.SegmentRunResult:
    """The run's one segment result for rocket.jpg."""
    page = admin.prompt_runs.list_results(run.done.run_id, video_id=rocket.video_id)
    assert len(page.data) == 1, page.data
    return page.data[0]


@pytest.fixture(scope="session")
def playground_run(admin: VideoVector, prompt: videovector.Prompt, flower: Ingested) -> videovector.PromptRun:
    """`videos.process` with a prompt over the playground image, and the run it started, waited for."""
    started = admin.videos.process(flower.video_id, prompt_id=prompt.prompt_id)
    assert isinstance(started.message, str) and started.message
    runs = poll(
        lambda: [r for r in admin.videos.list_prompt_runs(flower.video_id) if r.prompt_id == prompt.prompt_id],
        bool,
        timeout=60,
    )
    assert len(runs) == 1, runs
    return admin.prompt_runs.wait_for_completion(runs[0].run_id, poll_interval=1, timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="session")
def flower_result(admin: VideoVector, playground_run: videovector.PromptRun, flower: Ingested):
    page = admin.prompt_runs.list_results(playground_run.run_id, video_id=flower.video_id)
    assert len(page.data) == 1, page.data
    return page.data[0]


# --------------------------------------------------------------------------------------------
# Client and authentication
# --------------------------------------------------------------------------------------------


def test_authenticate_acknowledges_a_valid_key(admin: VideoVector) -> None:
    """`client.authenticate()` (POST /auth/processing-activity) answers an object or nothing, never an error."""
    ack = admin.authenticate()
    assert ack is None or isinstance(ack, dict)


def test_an_unknown_key_is_401_everywhere(server: Server) -> None:
    """A well-formed key the server never issued gets AuthenticationError, also from authenticate()."""
    with server.client("sk_live_" + "0" * 48) as stranger:
        with pytest.raises(AuthenticationError) as e:
            stranger.indexes.list()
        assert e.value.status_code == 401 and e.value.error_code
        with pytest.raises(AuthenticationError):
            stranger.search.text("idx_anything", query="bike")
        with pytest.raises(AuthenticationError):
            stranger.authenticate()


# --------------------------------------------------------------------------------------------
# Indexes
# --------------------------------------------------------------------------------------------


def test_index_lifecycle_with_idempotent_create_and_resumable_delete(admin: VideoVector) -> None:
    """create honours its Idempotency-Key (same body: same index; other body: IdempotencyError),
    retrieve/list see it, and delete is a lifecycle that ends `deleted` and can be asked again."""
    name = unique("sdk-lifecycle")
    key = f"index-create:{secrets.token_hex(16)}"
    created = admin.indexes.create(name=name, idempotency_key=key)
    assert created.name == name and created.index_id and not created.is_default
    assert admin.indexes.create(name=name, idempotency_key=key).index_id == created.index_id
    with pytest.raises(IdempotencyError) as conflict:
        admin.indexes.create(name=name + "-other", idempotency_key=key)
    assert conflict.value.status_code == 422 and "idempotency" in (conflict.value.error_code or "")

    fetched = admin.indexes.retrieve(created.index_id)
    assert (fetched.index_id, fetched.name, fetched.created_at) == (created.index_id, name, created.created_at)
    listed = admin.indexes.list(include_defaults=False)
    assert [i.index_id for i in listed].count(created.index_id) == 1
    assert not any(i.is_default for i in listed)
    assert not any(i.name == name + "-other" for i in listed), "the refused replay created nothing"
    assert {i.index_id for i in listed} <= {i.index_id for i in admin.indexes.list(include_defaults=True)}
    empty = admin.indexes.list_videos(created.index_id)
    assert empty.data == [] and not empty.has_more

    deletion = admin.indexes.delete(created.index_id)
    assert deletion.index_id == created.index_id and deletion.status in DELETION_STATES
    final = poll(lambda: admin.indexes.get_deletion(created.index_id), lambda d: d.status == "deleted", 60)
    assert final.deletion_id == deletion.deletion_id
    again = admin.indexes.delete(created.index_id)
    assert (again.deletion_id, again.status) == (deletion.deletion_id, "deleted")
    with pytest.raises(NotFoundError):
        admin.indexes.retrieve(created.index_id)
    assert created.index_id not in {i.index_id for i in admin.indexes.list(include_defaults=False)}
    with pytest.raises(NotFoundError):
        admin.indexes.delete("idx_never_made")


def test_index_videos_page_by_cursor(
    admin: VideoVector, main_index: videovector.Index, bikes: Ingested, rocket: Ingested
) -> None:
    """list_videos pages of one, next_page and auto_paging_iter cover every video exactly once."""
    page = admin.indexes.list_videos(main_index.index_id, limit=1)
    assert len(page.data) == 1 and page.has_more and page.next_cursor
    second = page.next_page()
    assert second is not None and len(second.data) == 1
    assert second.data[0].video_id != page.data[0].video_id
    every = [v.video_id for v in page.auto_paging_iter()]
    assert len(every) == len(set(every)), f"a video on two pages: {every}"
    assert {bikes.video_id, rocket.video_id} <= set(every)
    with pytest.raises(NotFoundError):
        admin.indexes.list_videos("idx_never_made")


# --------------------------------------------------------------------------------------------
# Uploads, import jobs and videos
# --------------------------------------------------------------------------------------------


def test_upload_answers_an_import_job_with_its_manifest(
    admin: VideoVector, main_index: videovector.Index, bikes: Ingested
) -> None:
    """upload answers an ImportJob for the index; once completed, retrieve, outputs/iter_outputs,
    files/iter_files and list all describe the one file and the one video it made."""
    assert bikes.first.job_id == bikes.job.job_id
    assert bikes.first.target_index_id == main_index.index_id
    job = admin.import_jobs.retrieve(bikes.job.job_id)
    assert job.status == "completed" and job.video_ids == [bikes.video_id]
    assert job.progress.failed == 0 and not job.failed_files

    outputs = admin.import_jobs.outputs(job.job_id)
    assert outputs.next_cursor is None and len(outputs.items) == 1
    out = outputs.items[0]
    assert (out.video_id, out.file_name, out.part_count) == (bikes.video_id, "bikes.mp4", 1)
    assert out.source_start_seconds == 0 and abs(out.source_end_seconds - BIKES_DURATION) < 0.1
    assert [o.video_id for o in admin.import_jobs.iter_outputs(job.job_id)] == [bikes.video_id]

    files = admin.import_jobs.files(job.job_id)
    assert files.next_cursor is None and [f.file_name for f in files.items] == ["bikes.mp4"]
    assert [f.file_id for f in admin.import_jobs.iter_files(job.job_id)] == [files.items[0].file_id]
    assert admin.import_jobs.files(job.job_id, failed_only=True).items == []

    assert job.job_id in {j.job_id for j in admin.import_jobs.list()}
    completed = admin.import_jobs.list(status="completed")
    assert job.job_id in {j.job_id for j in completed} and all(j.status == "completed" for j in completed)
    with pytest.raises(NotFoundError):
        admin.import_jobs.retrieve("job_never_made")


def test_an_upload_replayed_with_its_key_returns_the_first_job(
    admin: VideoVector, main_index: videovector.Index, rocket: Ingested
) -> None:
    """The same Idempotency-Key with the same file and fields (but a new multipart boundary, as
    every SDK attempt makes) answers the first job and ingests nothing; other fields are refused."""
    again = admin.videos.upload(
        file=MEDIA / "rocket.jpg", title="rocket", index_id=main_index.index_id, idempotency_key=ROCKET_UPLOAD_KEY
    )
    assert again.job_id == rocket.first.job_id
    with pytest.raises(IdempotencyError):
        admin.videos.upload(
            file=MEDIA / "rocket.jpg", title="another", index_id=main_index.index_id, idempotency_key=ROCKET_UPLOAD_KEY
        )
    titles = [v.title for v in admin.indexes.list_videos(main_index.index_id, limit=100).auto_paging_iter()]
    assert titles.count("rocket") == 1 and "another" not in titles


def test_video_retrieve_and_batch_reads(admin: VideoVector, bikes: Ingested, rocket: Ingested) -> None:
    """retrieve, batch_retrieve and batch_status report the processed video and image."""
    video = admin.videos.retrieve(bikes.video_id)
    assert (video.video_id, video.title, video.status, video.media_type) == (
        bikes.video_id,
        "bikes",
        "processed",
        "video",
    )
    assert video.video_uri and video.created_at
    assert admin.videos.retrieve(rocket.video_id).media_type == "image"
    with pytest.raises(NotFoundError):
        admin.videos.retrieve("vid_never_made")

    details = admin.videos.batch_retrieve([bikes.video_id, rocket.video_id])
    assert {d.video_id: d.media_type for d in details} == {bikes.video_id: "video", rocket.video_id: "image"}
    statuses = admin.videos.batch_status([bikes.video_id, rocket.video_id])
    assert {s.video_id: s.status for s in statuses} == {bikes.video_id: "processed", rocket.video_id: "processed"}


def test_segments_tile_the_video_across_pages(admin: VideoVector, bikes: Ingested) -> None:
    """list_segments honours limit; auto_paging_iter returns segments that tile [0, 10 s] in
    order with boundaries on bikes.mp4's real cuts; batch_segments(_for_targets) agree."""
    two = admin.videos.list_segments(bikes.video_id, limit=2)
    assert 1 <= len(two.data) <= 2
    first = admin.videos.list_segments(bikes.video_id, limit=1)
    assert len(first.data) == 1 and first.has_more, "smart segmentation of bikes.mp4 makes several segments"
    segments = list(first.auto_paging_iter())
    assert len(segments) >= 2 and len({s.segment_id for s in segments}) == len(segments)
    assert all(s.video_id == bikes.video_id and s.start_time < s.end_time for s in segments)
    assert segments[0].start_time == 0.0
    for prev, nxt in zip(segments, segments[1:], strict=False):
        assert abs(prev.end_time - nxt.start_time) < 1e-6, f"gap or overlap at {prev.end_time} / {nxt.start_time}"
        assert any(abs(nxt.start_time - c) < 0.041 for c in BIKES_CUTS), f"{nxt.start_time} is not a cut"
    assert abs(segments[-1].end_time - BIKES_DURATION) < 0.05
    assert [s.segment_id for s in two.data] == [s.segment_id for s in segments[: len(two.data)]]

    ids = [s.segment_id for s in segments]
    (batch,) = admin.videos.batch_segments([bikes.video_id])
    assert batch.video_id == bikes.video_id and [s.segment_id for s in batch.segments] == ids
    (targeted,) = admin.videos.batch_segments_for_targets([BatchVideoSegmentsTarget(video_id=bikes.video_id)])
    assert [s.segment_id for s in targeted.segments] == ids


def test_signed_url_thumbnail_and_gif_serve_media_bytes(server: Server, admin: VideoVector, bikes: Ingested) -> None:
    """get_signed_url turns a segment's gcs_uri into a URL that serves bytes without the API key;
    the thumbnail route serves a JPEG and the GIF route a GIF."""
    segment = admin.videos.list_segments(bikes.video_id, limit=1).data[0]
    assert segment.gcs_uri, f"a segment without gcs_uri: {segment!r}"
    signed = admin.videos.get_signed_url(segment.gcs_uri)
    assert signed.signed_url and signed.expires_at
    fetched = httpx.get(server.absolute(signed.signed_url), timeout=60)
    assert fetched.status_code == 200 and len(fetched.content) > 1000, fetched.status_code
    assert not fetched.headers.get("content-type", "").startswith("application/json")
    with pytest.raises((NotFoundError, ValidationError)):
        admin.videos.get_signed_url("gs://no-such-bucket/none.mp4", force_refresh=True)

    with server.http() as http:
        thumb = http.get(f"/videos/segments/{segment.segment_id}/thumbnail")
        assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/jpeg")
        assert thumb.content[:2] == b"\xff\xd8"
        gif = http.get(f"/videos/{bikes.video_id}/gif")
        assert gif.status_code == 200 and gif.headers["content-type"].startswith("image/gif")
        assert gif.content[:4] == b"GIF8"
        assert_error(http.get("/videos/segments/seg_never_made/thumbnail"), {404})


def test_an_upload_without_index_lands_in_the_playground(
    admin: VideoVector, flower: Ingested, main_index: videovector.Index, bikes: Ingested
) -> None:
    """list_playground holds index-less media and nothing of an index."""
    assert flower.first.target_index_id is None
    ids = playground_ids(admin)
    assert flower.video_id in ids and bikes.video_id not in ids
    assert flower.video_id not in ids_in(admin, main_index.index_id)
    video = admin.videos.retrieve(flower.video_id)
    assert (video.media_type, video.status) == ("image", "processed")


def test_create_from_a_file_uri_then_delete(admin: VideoVector, flower: Ingested, tmp_path) -> None:
    """videos.create imports a file:// URI under the server's --media-root into an index (the same
    picture elsewhere is refused); videos.delete ends `deleted`, is repeatable, and leaves the same
    picture in the playground alone."""
    index = admin.indexes.create(name=unique("sdk-create"))
    outside = tmp_path / "flower.jpg"
    outside.write_bytes((MEDIA / "flower.jpg").read_bytes())
    with pytest.raises(ValidationError):
        admin.videos.create(title="outside the root", video_uri=outside.as_uri(), index_id=index.index_id)
    assert ids_in(admin, index.index_id) == {}
    uri = (MEDIA / "flower.jpg").resolve().as_uri()
    job = admin.videos.create(title="flower by uri", video_uri=uri, index_id=index.index_id)
    assert job.job_id and job.target_index_id == index.index_id
    done = wait_import(admin, job.job_id)
    assert done.status == "completed" and len(done.video_ids) == 1
    video_id = done.video_ids[0]
    video = admin.videos.retrieve(video_id)
    assert (video.title, video.status, video.media_type) == ("flower by uri", "processed", "image")
    assert list(ids_in(admin, index.index_id)) == [video_id]

    deletion = admin.videos.delete(video_id)
    assert deletion.video_id == video_id and deletion.status in DELETION_STATES
    final = poll(lambda: admin.videos.get_deletion(video_id), lambda d: d.status == "deleted", 60)
    assert final.deletion_id == deletion.deletion_id
    assert admin.videos.delete(video_id).deletion_id == deletion.deletion_id
    with pytest.raises(NotFoundError):
        admin.videos.retrieve(video_id)
    assert ids_in(admin, index.index_id) == {}
    assert admin.videos.retrieve(flower.video_id).status == "processed", "the playground copy is untouched"
    with pytest.raises(NotFoundError):
        admin.videos.delete("vid_never_made")
    admin.indexes.delete(index.index_id)


def test_a_file_that_is_not_media_fails_its_job_and_changes_nothing(
    admin: VideoVector, main_index: videovector.Index, bikes: Ingested, rocket: Ingested
) -> None:
    """notvideo.mp4 (85 bytes of text): the import job ends `failed` (wait raises
    ProcessingError) with the file in its failed files; videos already there are untouched."""
    before = ids_in(admin, main_index.index_id)
    segments_before = [s.segment_id for s in admin.videos.list_segments(bikes.video_id).auto_paging_iter()]
    job = admin.videos.upload(file=MEDIA / "notvideo.mp4", title="not a video", index_id=main_index.index_id)
    with pytest.raises(ProcessingError):
        admin.import_jobs.wait_for_completion(job.job_id, poll_interval=0.5, timeout=IMPORT_TIMEOUT_S)
    failed = admin.import_jobs.retrieve(job.job_id)
    assert failed.status == "failed" and failed.error_message and failed.video_ids == []
    assert [f.file_name for f in admin.import_jobs.iter_files(job.job_id, failed_only=True)] == ["notvideo.mp4"]

    after = ids_in(admin, main_index.index_id)
    assert {k: after.get(k) for k in before} == before, "media already in the index changed"
    # The engine records a failed file as a media row with status `failed` (bad_input.rs); that
    # one row is all that may appear.
    extra = set(after) - set(before)
    assert len(extra) <= 1 and all(after[v] == "failed" for v in extra), after
    assert [s.segment_id for s in admin.videos.list_segments(bikes.video_id).auto_paging_iter()] == segments_before

    # A zero-byte file is refused up front or fails its job the same way.
    try:
        empty = admin.videos.upload(file=MEDIA / "empty.mp4", title="empty", index_id=main_index.index_id)
    except ValidationError as e:
        assert e.status_code in (400, 413, 415, 422)
    else:
        with pytest.raises(ProcessingError):
            admin.import_jobs.wait_for_completion(empty.job_id, poll_interval=0.5, timeout=IMPORT_TIMEOUT_S)
    assert {k: v for k, v in ids_in(admin, main_index.index_id).items() if v == "processed"} == {
        k: v for k, v in before.items() if v == "processed"
    }


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------


def test_prompt_create_retrieve_list_update_delete(admin: VideoVector) -> None:
    """create keeps video_level (with an extra key) and semantic_indexing and honours its
    Idempotency-Key; list counts it; update is partial; clear_video_level clears; an unused
    prompt deletes for good."""
    key = f"prompt-create:{secrets.token_hex(16)}"
    name = unique("sdk crud")
    created = admin.prompts.create(
        name=name,
        prompt_text=PROMPT_TEXT,
        json_schema=SCENE_SCHEMA,
        description="crud",
        video_level=VIDEO_LEVEL,
        semantic_indexing=SEMANTIC_INDEXING,
        idempotency_key=key,
    )
    assert (created.name, created.description, created.prompt_text) == (name, "crud", PROMPT_TEXT)
    assert set(created.json_schema["properties"]) == set(SCENE_SCHEMA["properties"])
    assert created.video_level is not None
    assert created.video_level.instructions_text == VIDEO_LEVEL["instructions_text"]
    assert created.video_level.json_schema == VIDEO_LEVEL["json_schema"]
    assert created.semantic_indexing.disabled_segment_fields == ["people"]
    assert created.is_active
    replay = admin.prompts.create(
        name=name,
        prompt_text=PROMPT_TEXT,
        json_schema=SCENE_SCHEMA,
        description="crud",
        video_level=VIDEO_LEVEL,
        semantic_indexing=SEMANTIC_INDEXING,
        idempotency_key=key,
    )
    assert replay.prompt_id == created.prompt_id

    fetched = admin.prompts.retrieve(created.prompt_id)
    assert (fetched.prompt_id, fetched.name, fetched.created_at) == (created.prompt_id, name, created.created_at)
    listing = admin.prompts.list(active_only=True, include_defaults=False)
    assert created.prompt_id in {p.prompt_id for p in listing.prompts}
    assert listing.total_count >= len(listing.prompts) and 0 < listing.active_count <= listing.total_count
    assert all(p.is_active for p in listing.prompts)
    usage = admin.prompts.get_usage(created.prompt_id)
    assert (usage.prompt_id, usage.name, usage.is_active, usage.is_in_use) == (created.prompt_id, name, True, False)
    assert usage.schema_properties_count == len(SCENE_SCHEMA["properties"])

    renamed = admin.prompts.update(created.prompt_id, name=name + " renamed")
    assert renamed.name == name + " renamed"
    assert (renamed.prompt_text, renamed.description) == (PROMPT_TEXT, "crud"), "update is partial"
    assert renamed.video_level is not None
    cleared = admin.prompts.update(created.prompt_id, clear_video_level=True)
    assert cleared.video_level is None and cleared.name == name + " renamed"
    assert admin.prompts.retrieve(created.prompt_id).video_level is None

    deleted = admin.prompts.delete(created.prompt_id)
    assert isinstance(deleted.message, str) and deleted.message
    with pytest.raises(NotFoundError):
        admin.prompts.retrieve(created.prompt_id)
    with pytest.raises(NotFoundError):
        admin.prompts.get_usage("prm_never_made")


def test_schema_checks_and_refused_prompts(admin: VideoVector) -> None:
    """test_schema accepts data that fits and reports data that does not; a schema outside the
    supported subset or a too-short prompt text is refused with ValidationError."""
    good = {"place": "sky", "mood": "calm", "outdoor": True, "people": 0}
    ok = admin.prompts.test_schema(json_schema=SCENE_SCHEMA, sample_data=good)
    assert ok.valid and ok.error is None and ok.validated_data == good and ok.message
    bad = admin.prompts.test_schema(json_schema=SCENE_SCHEMA, sample_data={**good, "place": "moon", "people": "two"})
    assert not bad.valid and bad.error and bad.message

    with pytest.raises(ValidationError) as e:
        admin.prompts.create(
            name=unique("sdk bad"),
            prompt_text=PROMPT_TEXT,
            json_schema={"type": "object", "properties": {"when": {"type": "date"}}},
        )
    assert e.value.status_code == 422
    with pytest.raises(ValidationError):
        admin.prompts.create(name=unique("sdk short"), prompt_text="short", json_schema=SCENE_SCHEMA)
    assert not any(p.name.startswith(("sdk bad", "sdk short")) for p in admin.prompts.list(active_only=False).prompts)


# --------------------------------------------------------------------------------------------
# Prompt runs
# --------------------------------------------------------------------------------------------


def test_estimate_before_running(admin: VideoVector, prompt: videovector.Prompt, rocket: Ingested) -> None:
    """estimate answers every field as a number or flag, and NotFoundError for an unknown prompt."""
    target = {"type": "videos", "video_ids": [rocket.video_id]}
    est = admin.prompt_runs.estimate(prompt_id=prompt.prompt_id, target=target, processing_model="gemini-2.5-flash")
    assert math.isfinite(est.estimated_mt) and est.estimated_mt >= 0
    assert math.isfinite(est.current_balance_mt) and isinstance(est.sufficient_balance, bool)
    assert all(isinstance(v, (int, float)) for v in est.breakdown.values())
    with pytest.raises(NotFoundError):
        admin.prompt_runs.estimate(prompt_id="prm_never_made", target=target)


def test_run_executes_and_is_listed(
    admin: VideoVector, run: Run, prompt: videovector.Prompt, rocket: Ingested, main_index: videovector.Index
) -> None:
    """execute answers a run at once; it ends completed over its one segment, and retrieve,
    list, videos.list_prompt_runs and indexes.list_prompt_runs all show it."""
    started, done = run.started, run.done
    assert started.prompt_id == prompt.prompt_id and started.prompt_name == prompt.name
    assert started.status in {"pending", "processing"} | RUN_DONE
    assert done.run_id == started.run_id and done.status in RUN_DONE, done
    assert done.total_segments == 1, done
    if done.status == "completed":
        assert done.completed_segments == 1, done
    assert isinstance(done.run_context, dict)

    assert admin.prompt_runs.retrieve(done.run_id).status == done.status
    assert done.run_id in {r.run_id for r in admin.prompt_runs.list()}
    assert done.run_id in {r.run_id for r in admin.videos.list_prompt_runs(rocket.video_id)}
    assert done.run_id in {r.run_id for r in admin.videos.list_prompt_runs(rocket.video_id, limit=5)}
    in_index = {r.run_id for r in admin.indexes.list_prompt_runs(main_index.index_id, limit=1).auto_paging_iter()}
    assert done.run_id in in_index
    with pytest.raises(NotFoundError):
        admin.prompt_runs.retrieve("run_never_made")


def test_run_results_follow_the_schema(
    admin: VideoVector, run: Run, rocket: Ingested, rocket_result: videovector.SegmentRunResult
) -> None:
    """list_results gives the segment's fields, valid for the schema; metadata_text lists the
    indexed fields (not the one semantic_indexing disables); the video-level result has its field."""
    segment = admin.videos.list_segments(rocket.video_id).data[0]
    r = rocket_result
    assert (r.run_id, r.segment_id, r.result_type) == (run.done.run_id, segment.segment_id, "segment")
    assert set(r.metadata) == set(SCENE_SCHEMA["properties"]), r.metadata
    assert admin.prompts.test_schema(json_schema=SCENE_SCHEMA, sample_data=r.metadata).valid
    assert f"place: {r.metadata['place']}" in r.metadata_text, r.metadata_text
    assert not any(line.startswith("people") for line in r.metadata_text.splitlines()), r.metadata_text

    video = admin.prompt_runs.get_video_result(run.done.run_id, rocket.video_id)
    assert (video.run_id, video.video_id, video.result_type) == (run.done.run_id, rocket.video_id, "video")
    assert set(video.metadata) == {"overall"} and video.metadata["overall"] in {"quiet", "busy"}


def test_run_scoped_segments_are_the_segments_the_run_read(
    admin: VideoVector, run: Run, rocket: Ingested, rocket_result
) -> None:
    """batch_segments_for_targets and list_segments with a run_id answer the segments that run
    read (SDK example 20 plays them back), also when the run used the ingest segmentation, as
    every run over a still image does."""
    (scoped,) = admin.videos.batch_segments_for_targets(
        [BatchVideoSegmentsTarget(video_id=rocket.video_id, run_id=run.done.run_id)]
    )
    assert scoped.video_id == rocket.video_id and scoped.run_id == run.done.run_id
    assert [s.segment_id for s in scoped.segments] == [rocket_result.segment_id]
    listed = admin.videos.list_segments(rocket.video_id, run_id=run.done.run_id)
    assert [s.segment_id for s in listed.auto_paging_iter()] == [rocket_result.segment_id]


def test_run_diagnostics(admin: VideoVector, run: Run, rocket: Ingested) -> None:
    """The failed-segment manifest is empty for a completed run; llm-calls logs every model call
    with its tokens; cancelling a finished run answers it unchanged; retries of unknown targets are 404."""
    manifest = admin.prompt_runs.get_failed_segments(run.done.run_id)
    assert manifest.run_id == run.done.run_id
    if run.done.status == "completed":
        assert manifest.failed_segments == 0 and manifest.videos == []

    calls = admin.prompt_runs.get_llm_calls(run.done.run_id)
    assert calls, "a completed run made model calls"
    for call in calls:
        assert call.input_tokens > 0 and call.output_tokens > 0, call
        assert call.total_tokens == call.input_tokens + call.output_tokens, call
        assert call.model and call.purpose and call.status
        assert call.prompt_run_id in (None, run.done.run_id)
    segment_id = admin.videos.list_segments(rocket.video_id).data[0].segment_id
    assert any(c.segment_id == segment_id for c in calls), [c.segment_id for c in calls]

    cancelled = admin.prompt_runs.cancel(run.done.run_id)
    assert cancelled.run_id == run.done.run_id and cancelled.status == run.done.status

    with pytest.raises(NotFoundError):
        admin.prompt_runs.retry_segment(run.done.run_id, "vid_never_made", segment_id)
    with pytest.raises(NotFoundError):
        admin.prompt_runs.get_segment_retry_status(run.done.run_id, rocket.video_id, segment_id, "rty_never_made")


def test_process_runs_the_prompt_over_a_playground_item(playground_run: videovector.PromptRun, flower_result) -> None:
    """videos.process with a prompt_id starts a run over that item, which completes."""
    assert playground_run.status in RUN_DONE, playground_run
    assert set(flower_result.metadata) == set(SCENE_SCHEMA["properties"])


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


def test_text_search(admin: VideoVector, main_index: videovector.Index, bikes: Ingested, rocket: Ingested) -> None:
    """text search answers at most top_k ranked hits from the index, with the required fields."""
    results = admin.search.text(main_index.index_id, query="people riding bicycles in a street", top_k=3)
    assert 1 <= len(results) <= 3
    in_index = set(ids_in(admin, main_index.index_id))
    assert len({r.result_id for r in results}) == len(results)
    for r in results:
        assert r.video_id in in_index and isinstance(r.text_content, str) and r.similarity_score is not None
        if r.result_type == "segment" and r.video_id == bikes.video_id:
            assert r.start_time is not None and r.end_time is not None and r.start_time < r.end_time
    scores = [r.similarity_score for r in results]
    assert scores == sorted(scores, reverse=True), scores


def test_search_requests_out_of_range_are_refused(admin: VideoVector, main_index: videovector.Index) -> None:
    """top_k 0 or 10000 is ValidationError; an unknown index is NotFoundError; a multimodal
    search with neither text nor image is ValidationError."""
    for top_k in (0, 10000):
        with pytest.raises(ValidationError) as e:
            admin.search.text(main_index.index_id, query="bike", top_k=top_k)
        assert e.value.status_code in (400, 422)
    with pytest.raises(NotFoundError):
        admin.search.text("idx_never_made", query="bike")
    with pytest.raises(ValidationError):
        admin.search.multimodal(main_index.index_id)
    with pytest.raises(ValidationError):
        admin.search.image(main_index.index_id, image_data=base64.b64encode(b"not an image").decode())


def test_image_search_finds_the_same_picture(
    admin: VideoVector, main_index: videovector.Index, rocket: Ingested
) -> None:
    """image search with rocket.jpg's own bytes ranks that image first (its keyframe is the same picture)."""
    results = admin.search.image(main_index.index_id, image_data=b64("rocket.jpg"), top_k=5)
    assert 1 <= len(results) <= 5
    assert results[0].video_id == rocket.video_id, [(r.video_id, r.similarity_score) for r in results]


def test_multimodal_search_fuses_both_queries(admin: VideoVector, main_index: videovector.Index) -> None:
    """multimodal results carry fused_score and match_type and are ranked by the fused score."""
    results = admin.search.multimodal(
        main_index.index_id,
        text_query="a rocket",
        image_data=b64("rocket.jpg"),
        text_weight=0.65,
        image_weight=0.35,
        top_k=5,
    )
    assert 1 <= len(results) <= 5
    assert all(r.match_type in {"both", "text_only", "image_only"} for r in results)
    fused = [r.fused_score for r in results]
    assert fused == sorted(fused, reverse=True), fused


def test_text_search_within_a_run(
    admin: VideoVector, main_index: videovector.Index, run: Run, rocket: Ingested
) -> None:
    """run_ids keeps a search inside the run's segments."""
    results = admin.search.text(main_index.index_id, query="place: sky", top_k=5, run_ids=[run.done.run_id])
    assert results and all(r.video_id == rocket.video_id for r in results)


def test_filter_search_on_the_runs_fields(
    admin: VideoVector, main_index: videovector.Index, run: Run, rocket: Ingested, rocket_result
) -> None:
    """filter (AND of conditions) returns the segment whose fields match, every hit satisfies
    the conditions, another value excludes it, and a condition that does not fit the schema is 422."""
    place, people = rocket_result.metadata["place"], rocket_result.metadata["people"]
    conditions = [
        {"field": "place", "operator": "equals", "value": place, "type": "string"},
        {"field": "people", "operator": "equals", "value": people, "type": "integer"},
    ]
    found = admin.search.filter(main_index.index_id, conditions=conditions, page_size=10)
    assert rocket.video_id in {r.video_id for r in found.results}
    for hit in found.results:
        meta = metadata_of(hit)
        assert str(meta["place"]).lower() == place.lower() and meta["people"] == people, meta
    scoped = admin.search.filter(main_index.index_id, conditions=conditions[:1], run_ids=[run.done.run_id])
    assert {r.video_id for r in scoped.results} == {rocket.video_id}

    other = next(p for p in SCENE_SCHEMA["properties"]["place"]["enum"] if p != place)
    none = admin.search.filter(
        main_index.index_id, conditions=[{"field": "place", "operator": "equals", "value": other, "type": "string"}]
    )
    assert rocket.video_id not in {r.video_id for r in none.results}

    for bad in (
        {"field": "place", "operator": "greater_than", "value": 1, "type": "integer"},
        {"field": "no_such_field", "operator": "is_not_empty", "type": "string"},
    ):
        with pytest.raises(ValidationError) as e:
            admin.search.filter(main_index.index_id, conditions=[bad])
        assert e.value.status_code == 422, e.value


def test_filter_playground_sees_only_playground_results(
    admin: VideoVector, flower: Ingested, flower_result, main_index: videovector.Index
) -> None:
    """filter_playground finds the playground image by its fields and nothing from an index."""
    place = flower_result.metadata["place"]
    found = admin.search.filter_playground(
        conditions=[{"field": "place", "operator": "equals", "value": place, "type": "string"}]
    )
    ids = {r.video_id for r in found.results}
    assert flower.video_id in ids and not ids & set(ids_in(admin, main_index.index_id))
    assert all(str(metadata_of(r)["place"]).lower() == place.lower() for r in found.results)


def test_multi_run_search(
    admin: VideoVector,
    run: Run,
    playground_run: videovector.PromptRun,
    rocket: Ingested,
    flower: Ingested,
    main_index: videovector.Index,
) -> None:
    """multi_run searches the named runs' results only (or the runs of one index)."""
    both = admin.search.multi_run(query="a calm sky", run_ids=[run.done.run_id, playground_run.run_id], top_k=5)
    assert both and {r.video_id for r in both} <= {rocket.video_id, flower.video_id}
    weighted = admin.search.multi_run(query="a calm sky", index_id=main_index.index_id, aggregation="weighted", top_k=5)
    assert {r.video_id for r in weighted} <= set(ids_in(admin, main_index.index_id))


def test_playground_search(admin: VideoVector, flower: Ingested, playground_run: videovector.PromptRun) -> None:
    """playground search sees only playground media; run_id narrows it to that run."""
    results = admin.search.playground(query="a flower", top_k=10)
    assert flower.video_id in {r.video_id for r in results}
    assert {r.video_id for r in results} <= playground_ids(admin)
    in_run = admin.search.playground(query="a flower", top_k=10, run_id=playground_run.run_id)
    assert in_run and {r.video_id for r in in_run} == {flower.video_id}


# --------------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------------


def test_api_key_scopes_rotation_and_revocation(
    server: Server, admin: VideoVector, main_index: videovector.Index, bikes: Ingested
) -> None:
    """A `search` key searches but cannot write (403); listings never show a secret; rotate
    gives a new secret and the old one is 401; revoke makes it inactive and 401; delete removes it."""
    created = admin.api_keys.create(name="sdk search only", scopes=["search"])
    assert KEY_RE.match(created.key), created.key
    assert created.scopes == ["search"] and created.is_active and created.key.startswith(created.key_prefix)
    with server.client(created.key) as searcher:
        assert isinstance(searcher.search.text(main_index.index_id, query="bike", top_k=1), list)
        with pytest.raises(AuthorizationError) as e:
            searcher.indexes.create(name=unique("sdk-forbidden"))
        assert e.value.status_code == 403
        with pytest.raises(AuthorizationError):
            searcher.prompts.create(name=unique("sdk forbidden"), prompt_text=PROMPT_TEXT, json_schema=SCENE_SCHEMA)
    assert not any(i.name.startswith("sdk-forbidden") for i in admin.indexes.list(include_defaults=False))

    assert admin.api_keys.retrieve(created.key_id).name == "sdk search only"
    assert created.key_id in {k.key_id for k in admin.api_keys.list()}
    with server.http() as http:
        for path in ("/api-keys", f"/api-keys/{created.key_id}"):
            listing = http.get(path)
            assert listing.status_code == 200 and created.key not in listing.text, "a listing shows the secret"

    rotated = admin.api_keys.rotate(created.key_id)
    assert KEY_RE.match(rotated.key) and rotated.key != created.key and rotated.scopes == ["search"]
    with server.client(created.key) as old, server.client(rotated.key) as new:
        with pytest.raises(AuthenticationError):
            old.search.text(main_index.index_id, query="bike", top_k=1)
        assert isinstance(new.search.text(main_index.index_id, query="bike", top_k=1), list)

        revoked = admin.api_keys.revoke(rotated.key_id)
        assert not revoked.is_active and revoked.revoked_at
        with pytest.raises(AuthenticationError):
            new.search.text(main_index.index_id, query="bike", top_k=1)
        with pytest.raises(AuthenticationError):
            new.authenticate()

    assert admin.api_keys.delete(rotated.key_id).message
    with pytest.raises(NotFoundError):
        admin.api_keys.retrieve(rotated.key_id)
    assert rotated.key_id not in {k.key_id for k in admin.api_keys.list()}


def test_a_reply_before_the_body_is_read_closes_the_connection(server: Server, admin: VideoVector) -> None:
    """A write refused before its body is read (403) says `Connection: close`, since the server
    drops that connection: a client that reused it could lose its next request (without the
    header, the SDK's call after a 403 failed with "Request failed." about once in 3000). A
    body that was read (422), and a request without one (404), keep the connection."""
    reader = admin.api_keys.create(name=unique("sdk reader"), scopes=["read"])
    body = {"name": "x", "bucket": "b", "region": "us-east-1"}
    with server.http(api_key=reader.key) as http:
        refused = http.post("/indexes", json={"name": unique("never made")})
        assert refused.status_code == 403 and refused.headers.get("connection") == "close", refused.headers
    with server.http() as http:
        invalid = http.post("/indexes", json={"name": 7})
        assert invalid.status_code == 422 and invalid.headers.get("connection") != "close", invalid.headers
        missing = http.get("/indexes/idx_0000000000000000")
        assert missing.status_code == 404 and missing.headers.get("connection") != "close", missing.headers
        unrouted = http.post("/no-such-route", json=body)
        assert unrouted.status_code == 404 and unrouted.headers.get("connection") == "close", unrouted.headers
    with server.client(reader.key) as sdk:
        for _ in range(300):
            with pytest.raises(AuthorizationError):
                sdk.indexes.create(name=unique("never made"))
            assert isinstance(sdk.indexes.list(), list)
    admin.api_keys.delete(reader.key_id)


# --------------------------------------------------------------------------------------------
# Usage and rate limits
# --------------------------------------------------------------------------------------------


def test_usage_counts_searches_and_has_every_view(
    admin: VideoVector, main_index: videovector.Index, bikes: Ingested
) -> None:
    """totals.total_searches is a real counter; history, details, breakdown and metric types
    answer their shapes, and the date and metric filters are applied."""
    before = admin.usage.get_current()
    for query in ("bicycle", "street"):
        admin.search.text(main_index.index_id, query=query, top_k=1)
    current = admin.usage.get_current()
    assert current.totals.total_searches >= before.totals.total_searches + 2
    assert current.period_start < current.period_end
    assert all(isinstance(v, (int, float)) for v in current.metrics.values())

    now = datetime.now(UTC)
    history = admin.usage.get_history(start_date=now - timedelta(days=90), end_date=now + timedelta(days=1), limit=3)
    assert len(history.periods) <= 3
    assert all(isinstance(p.totals, dict) and p.period_start < p.period_end for p in history.periods)

    types = admin.usage.get_metric_types()
    names = [t.type for t in types]
    assert names and len(names) == len(set(names)) and all(t.unit and t.description for t in types)
    details = admin.usage.get_details(limit=5)
    assert 1 <= len(details) <= 5 and all(d.metric_type in names for d in details)
    search_metric = next((n for n in names if "search" in n), None)
    if search_metric:
        only = admin.usage.get_details(metric_type=search_metric, start_date=now - timedelta(hours=1), limit=50)
        assert only and all(d.metric_type == search_metric for d in only)

    breakdown = admin.usage.get_breakdown()
    assert all(isinstance(v, (int, float)) for v in breakdown.breakdown.values())
    assert breakdown.totals.total_searches >= before.totals.total_searches + 2


def test_rate_limit_status_and_refresh(admin: VideoVector) -> None:
    """rate_limits.get_status and refresh answer consistent per-category counters."""
    status = admin.rate_limits.get_status()
    refreshed = admin.rate_limits.refresh()
    assert status.user_id == refreshed.user_id and status.plan_id
    for s in list(status.categories.values()) + list(refreshed.categories.values()):
        assert 0 <= s.minute_used and 0 <= s.minute_remaining <= s.minute_limit, s
        assert 0 <= s.hour_used and 0 <= s.hour_remaining <= s.hour_limit, s


# --------------------------------------------------------------------------------------------
# Workflow
# --------------------------------------------------------------------------------------------


def test_workflow_upload_process_search(admin: VideoVector, prompt: videovector.Prompt) -> None:
    """workflow.upload finds-or-creates an index by name; process runs a saved prompt over one
    video id given as a string; search answers vector and condition pages, with next_page."""
    name = unique("sdk-workflow")
    first = admin.workflow.upload(MEDIA / "chelsea.png", title="cat", index_name=name)
    first = wait_import(admin, first.job_id)
    index_id = first.target_index_id
    assert first.status == "completed" and index_id and len(first.video_ids) == 1
    assert [i.index_id for i in admin.indexes.list(include_defaults=False) if i.name == name] == [index_id]
    second = wait_import(admin, admin.workflow.upload(MEDIA / "coffee.png", index_name=name).job_id)
    assert second.target_index_id == index_id, "the same index_name finds the same index"
    cat = first.video_ids[0]

    processed = admin.workflow.process(prompt_id=prompt.prompt_id, video_ids=cat)
    assert processed.prompt.prompt_id == prompt.prompt_id and not processed.prompt_created_inline
    assert processed.run.run_id in processed.status_url
    done = admin.workflow.wait_until_searchable(processed.run.run_id, poll_interval=1, timeout=RUN_TIMEOUT_S)
    assert done.status in RUN_DONE and done.total_segments == 1

    page = admin.workflow.search("a cat", index_id=index_id, limit=1)
    assert page.response.mode == "vector" and len(page) <= 1
    assert {r.video_id for r in page} <= {cat, second.video_ids[0]}
    nxt = page.next_page()
    if page.has_more:
        assert nxt is not None and nxt.response.mode == "vector"
        assert not {r.result_id for r in nxt} & {r.result_id for r in page}, "next_page repeats a hit"
    else:
        assert nxt is None

    by_fields = admin.workflow.search(
        filters=[{"field": "place", "operator": "is_not_empty", "type": "string"}],
        prompt_run_ids=processed.run.run_id,
        index_id=index_id,
    )
    assert by_fields.response.mode == "condition"
    assert {r.video_id for r in by_fields} == {cat}


def test_workflow_define_is_optional(admin: VideoVector) -> None:
    """workflow.define drafts a prompt definition (skipped when the server answers an error)."""
    try:
        drafted = admin.workflow.define("Say whether the picture shows the sky.", save=False)
    except VideoVectorError as e:
        pytest.skip(f"workflow.define answered {e.status_code} {e.error_code}: {e.message}")
    assert drafted.saved is False and drafted.prompt_id is None and drafted.prompt is None
    assert drafted.definition.json_schema.get("type") == "object" and drafted.definition.prompt_text


# --------------------------------------------------------------------------------------------
# Routes outside the SDK: SQL search and the event stream
# --------------------------------------------------------------------------------------------


def test_sql_search(
    server: Server,
    admin: VideoVector,
    main_index: videovector.Index,
    run: Run,
    bikes: Ingested,
    rocket: Ingested,
    rocket_result,
) -> None:
    """The SQL catalog names the scope's tables (one per run); SELECTs answer columns and rows
    that agree with the SDK's view; result_limit caps rows; a write is refused with query_refused."""
    idx = main_index.index_id
    with server.http() as http:
        catalog = http.post(f"/search/sql/{idx}/catalog", json={})
        assert catalog.status_code == 200, catalog.text
        assert {"media", "segments", "results"} <= {t["name"] for t in catalog.json()["tables"]}
        scoped = http.post(f"/search/sql/{idx}/catalog", json={"run_ids": [run.done.run_id]})
        assert scoped.status_code == 200, scoped.text
        run_tables = [t for t in scoped.json()["tables"] if t.get("run_id") == run.done.run_id]
        assert len(run_tables) == 1 and "place" in {c["name"] for c in run_tables[0]["columns"]}, run_tables

        query = {"query": "SELECT video_id, media_type, status FROM media ORDER BY video_id"}
        media = http.post(f"/search/sql/{idx}", json=query)
        assert media.status_code == 200, media.text
        assert media.json()["columns"] == ["video_id", "media_type", "status"]
        rows = {row[0]: (row[1], row[2]) for row in media.json()["rows"]}
        listed = ids_in(admin, idx)
        assert {v for v, status in listed.items() if status == "processed"} <= set(rows)
        assert all(rows[v][1] == "failed" for v in set(rows) - set(listed)), "SQL sees media the SDK does not"
        assert rows[rocket.video_id][0] == "image" and rows[bikes.video_id][0] == "video"

        capped = http.post(f"/search/sql/{idx}", json={"query": "SELECT segment_id FROM segments", "result_limit": 1})
        assert capped.status_code == 200 and len(capped.json()["rows"]) == 1, capped.text
        table = run_tables[0]["name"].replace('"', '""')
        place = http.post(
            f"/search/sql/{idx}",
            json={"query": f"SELECT place FROM \"{table}\" WHERE video_id = '{rocket.video_id}'"},
        )
        assert place.status_code == 200 and place.json()["rows"] == [[rocket_result.metadata["place"]]], place.text

        assert_error(http.post(f"/search/sql/{idx}", json={"query": "DELETE FROM media"}), {400}, "query_refused")
        assert_error(http.post("/search/sql/idx_never_made", json={"query": "SELECT 1"}), {404})
        assert http.post(f"/search/sql/{idx}", json=query).json()["rows"] == media.json()["rows"], "DELETE removed rows"
    assert ids_in(admin, idx) == listed


def test_event_stream_replays_filtered_events(
    server: Server, bikes: Ingested, main_index: videovector.Index, run: Run
) -> None:
    """GET /processing/events/stream sends `id:`/`event:`/`data:` events in id order, filtered by
    video, type, index and run, and resumes after Last-Event-ID."""
    events = read_sse(server, {"video_ids": bikes.video_id}, last_event_id="0")
    assert events, "the ingest of bikes.mp4 made events"
    ids = [int(e.id) for e in events]
    assert ids == sorted(set(ids)), ids
    assert all(bikes.video_id in e.data and isinstance(e.json(), dict) and e.event for e in events)
    assert "media.processing.completed" in {e.event for e in events}, [e.event for e in events]

    resumed = read_sse(server, {"video_ids": bikes.video_id}, last_event_id=str(ids[0]))
    assert [int(e.id) for e in resumed][: len(ids) - 1] == ids[1:]

    completed = read_sse(
        server, {"event_types": "media.processing.completed", "index_id": main_index.index_id}, last_event_id="0"
    )
    assert completed and all(e.event == "media.processing.completed" for e in completed)
    assert any(bikes.video_id in e.data for e in completed)

    of_run = read_sse(server, {"run_id": run.done.run_id}, last_event_id="0")
    assert of_run and all(run.done.run_id in e.data for e in of_run)


# --------------------------------------------------------------------------------------------
# Malformed input
# --------------------------------------------------------------------------------------------


def test_malformed_requests_get_the_envelope_and_change_nothing(
    server: Server, admin: VideoVector, main_index: videovector.Index, bikes: Ingested
) -> None:
    """Bad JSON is 400, wrong types 400/422, unknown fields are tolerated, a body over the
    limit is 413 and a missing key 401, all in the error envelope; afterwards the server still
    answers and no index or video appeared or went."""
    idx = main_index.index_id
    indexes_before = {i.index_id for i in admin.indexes.list(include_defaults=False)}
    videos_before = ids_in(admin, idx)
    with server.http() as http:
        assert_error(http.post("/indexes", content=b'{"name": ', headers={"Content-Type": "application/json"}), {400})
        # Syntax errors only: a body that is also of the wrong type may be reported as 422 first.
        trailing_comma = b'{"name": "x",}'
        assert_error(http.post("/indexes", content=trailing_comma, headers={"Content-Type": "application/json"}), {400})
        assert_error(http.post("/indexes", json={"name": 123}), {400, 422})
        assert_error(http.post("/indexes", json={}), {400, 422})
        assert_error(http.post("/indexes", json={"name": ""}), {400, 422})
        assert_error(http.post(f"/indexes/{idx}/search", json={"query": "bike", "top_k": "ten"}), {400, 422})
        assert_error(http.post(f"/indexes/{idx}/search", json={"query": ["bike"]}), {400, 422})
        assert_error(http.get(f"/indexes/{idx}/videos", params={"limit": 0}), {400, 422})
        assert_error(http.get(f"/indexes/{idx}/videos", params={"limit": "many"}), {400, 422})
        assert_error(http.get(f"/indexes/{idx}/videos", params={"limit": 2, "cursor": "not-a-cursor"}), {400, 422})
        assert_error(
            http.post(
                "/videos/upload",
                content=b"--x\r\nnonsense",
                headers={"Content-Type": "multipart/form-data; boundary=x"},
            ),
            {400, 422},
        )
        no_file = {"title": (None, "no file"), "index_id": (None, idx)}  # multipart, text fields only
        assert_error(http.post("/videos/upload", files=no_file), {400, 422})

        tolerated = http.post(f"/indexes/{idx}/search", json={"query": "bike", "top_k": 2, "not_a_field": {"x": [1]}})
        assert tolerated.status_code == 200 and len(tolerated.json()) <= 2, tolerated.text

    status, reply = post_oversized(server, f"/indexes/{idx}/search", claimed=1 << 30, max_send=512 << 20)
    assert status == 413, reply[:300]

    with server.http(api_key=None) as anonymous:
        assert_error(anonymous.get("/indexes"), {401})
        assert_error(anonymous.post(f"/indexes/{idx}/search", json={"query": "bike"}), {401})
    with server.http(api_key="not-a-key") as garbled:
        assert_error(garbled.get("/indexes"), {401})

    assert {i.index_id for i in admin.indexes.list(include_defaults=False)} == indexes_before
    assert ids_in(admin, idx) == videos_before
    assert admin.search.text(idx, query="bike", top_k=1)


# --------------------------------------------------------------------------------------------
# Last: deleting the prompt the runs used
# --------------------------------------------------------------------------------------------


def test_a_used_prompt_deletes_only_with_force(admin: VideoVector, prompt: videovector.Prompt, run: Run) -> None:
    """A prompt with runs is in use: delete is ConflictError unless force, which takes it out of
    the active list; its runs stay readable. (Last in the module: later runs would need it.)"""
    assert admin.prompts.get_usage(prompt.prompt_id).is_in_use
    with pytest.raises(ConflictError):
        admin.prompts.delete(prompt.prompt_id)
    assert admin.prompts.delete(prompt.prompt_id, force=True).message
    assert prompt.prompt_id not in {p.prompt_id for p in admin.prompts.list(active_only=True).prompts}
    try:
        assert not admin.prompts.retrieve(prompt.prompt_id).is_active
    except NotFoundError:
        pass  # deleted outright is fine too
    assert admin.prompt_runs.retrieve(run.done.run_id).status == run.done.status
