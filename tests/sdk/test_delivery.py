"""Connectors, connector imports, exports and webhooks through the SDK, against local stand-ins
for the cloud stores: moto's S3 server and azurite's Blob service, each on a free loopback port.

The module has a server of its own (`videovector serve` with `AWS_ENDPOINT_URL`/`AWS_ALLOW_HTTP`
pointing at moto, `AZURE_STORAGE_USE_EMULATOR`/`AZURITE_BLOB_STORAGE_URL` at azurite, and a
temporary `--media-root` for a local connector) on a data folder of its own; its tests run in
file order and share it. The restart test stops it with SIGTERM and starts another on the same
folder (webhook deliveries kept across the stop). A webhook receiver (http.server on a loopback
port) verifies every signature.

Run with `bash scripts/sdk_test.sh tests/sdk/test_delivery.py` (it installs moto and azurite).
"""

from __future__ import annotations

import io
import json
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import videovector
from sdkserver import (
    MEDIA,
    PROMPT_TEXT,
    SCHEMA,
    DataFolder,
    Receipt,
    Server,
    StoreProcess,
    WebhookReceiver,
    assert_error,
    azure_create_container,
    azure_put_blob,
    poll,
    s3_request,
    spawn_azurite,
    spawn_moto,
    stop_server,
    tap,
    unique,
    webhook_signature,
)
from videovector import (
    AuthorizationError,
    ConflictError,
    NotFoundError,
    ProcessingError,
    VideoVector,
    VideoVectorError,
)

# What every poll here waits between reads: the engine finishes these small media in well under
# a second, so a long interval would be most of the wall time.
POLL_S = 0.1
# One import or export of the small fixtures here; generous for a loaded 2-core machine.
JOB_TIMEOUT_S = 120
# A webhook's first retry comes about 2 s (+-20%) after a failure; wait well past it.
DELIVERY_TIMEOUT_S = 20

BUCKET = "vv-media"
CONTAINER = "vv-media"
# Under prefix batch/: three media-looking files and a text file the import's pattern leaves out;
# batch/nested/ holds one more picture that only a recursive listing sees.
BATCH = {
    "batch/bikes.mp4": "bikes.mp4",
    "batch/rocket.jpg": "rocket.jpg",
    "batch/notvideo.mp4": "notvideo.mp4",
    "batch/notes.txt": "sklearn_images_README.txt",
    "batch/nested/flower.jpg": "flower.jpg",
}
# The webhook test's imports: one that completes, one partly (notvideo.mp4 is not media).
HOOK_OBJECTS = {
    "hooks/whole/flower.jpg": "flower.jpg",
    "hooks/partial/rocket.jpg": "rocket.jpg",
    "hooks/partial/notvideo.mp4": "notvideo.mp4",
}
MEDIA_PATTERN = "*.{mp4,jpg}"
S3_SECRET = "s3-secret-" + "x7" * 16
AZURE_SECRET = "azure-client-secret-" + "q9" * 12
GCS_PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\\nMIIEvgIBADANBgkqhkiG9w0BAQEFAASC-test-only\\n-----END PRIVATE KEY-----\\n"
)
# The events a webhook can name (the SDK's list).
EVENT_NAMES = {
    "media.created",
    "media.processing.started",
    "media.processing.completed",
    "media.processing.failed",
    "prompt_run.started",
    "prompt_run.completed",
    "prompt_run.failed",
    "prompt_run.cancelled",
    "prompt_run.partial_completed",
    "prompt_run.progress",
    "export.ready",
    "export.failed",
    "import_job.started",
    "import_job.completed",
    "import_job.failed",
    "import_job.partial_completed",
    "import_job.progress",
}
HOOK_EVENTS = ["media.processing.completed", "import_job.completed", "import_job.partial_completed", "export.ready"]


# --------------------------------------------------------------------------------------------
# Fixtures: the stores, the module's server, the shared connectors and indexes
# --------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """The module's stores and its data folder (the running server is `folder.current`)."""

    s3: StoreProcess
    azure: StoreProcess
    folder: DataFolder
    local_root: Path
    tmp: Path
    # The SDK's replies to look through for secrets (every client made by `client()`).
    replies: list = field(default_factory=list)

    @property
    def server(self) -> Server:
        return self.folder.current

    def client(self) -> VideoVector:
        client = self.server.client()
        self.replies_of(client)
        return client

    def replies_of(self, client: VideoVector) -> None:
        self.replies.append(tap(client))

    def raw_replies(self) -> bytes:
        return b"\n".join(r.body for replies in self.replies for r in replies)

    def s3_get(self, key: str) -> httpx.Response:
        return s3_request(self.s3.endpoint, "GET", f"{BUCKET}/{key}")


@pytest.fixture(scope="module")
def delivery(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: Path, report_folder: Callable[[DataFolder], None]
) -> Iterator[Delivery]:
    root: Path = tmp_path_factory.mktemp("delivery")
    # Both stores start while the server does; it contacts them only when a connector is used.
    s3 = spawn_moto(root / "moto.log")
    azure = spawn_azurite(root / "azurite", root / "azurite.log")
    local_root = root / "local"
    (local_root / "batch").mkdir(parents=True)
    for key, name in BATCH.items():
        if key.count("/") == 1:
            shutil.copyfile(MEDIA / name, local_root / key)
    env = {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AZURE_STORAGE_USE_EMULATOR": "true",
        "AZURITE_BLOB_STORAGE_URL": azure.endpoint,
    }
    (root / "folder").mkdir()
    folder = DataFolder(root / "folder", tiny_clip, env=env, media_roots=(MEDIA, local_root))
    report_folder(folder)
    try:
        folder.start()
        s3.wait()
        azure.wait()
        assert s3_request(s3.endpoint, "PUT", BUCKET).status_code == 200
        for key, name in {**BATCH, **HOOK_OBJECTS}.items():
            r = s3_request(s3.endpoint, "PUT", f"{BUCKET}/{key}", (MEDIA / name).read_bytes())
            assert r.status_code == 200, f"{key}: {r.status_code} {r.text[:300]}"
        azure_create_container(azure.endpoint, CONTAINER)
        azure_put_blob(azure.endpoint, CONTAINER, "pictures/rocket.jpg", (MEDIA / "rocket.jpg").read_bytes())
        azure_put_blob(azure.endpoint, CONTAINER, "pictures/notes.txt", b"not a picture\n")
        azure_put_blob(azure.endpoint, CONTAINER, "other/flower.jpg", (MEDIA / "flower.jpg").read_bytes())
        yield Delivery(s3, azure, folder, local_root, root)
    finally:
        statuses = [(n, stop_server(srv.proc)) for n, srv in enumerate(folder.servers) if srv.proc.poll() is None]
        s3.stop()
        azure.stop()
    bad = [(n, status) for n, status in statuses if status != 0]
    if bad:
        pytest.fail(f"the module's server #{bad[0][0]} exited {bad[0][1]} after SIGTERM (expected 0)")


@pytest.fixture(scope="module")
def vv(delivery: Delivery) -> Iterator[VideoVector]:
    """An admin SDK client on the module's first server."""
    with delivery.client() as client:
        yield client


@pytest.fixture(scope="module")
def s3_conn(vv: VideoVector) -> videovector.Connector:
    """The S3 connector of the imports and exports: import and export scopes, new_only."""
    return vv.connectors.create_s3(
        name=unique("s3 media"),
        bucket=BUCKET,
        region="us-east-1",
        aws_access_key_id="AKIATESTKEY0001",
        aws_secret_access_key=S3_SECRET,
        scopes=["import", "export"],
        export_base_path="exports/base/",
        import_mode="new_only",
    )


@pytest.fixture(scope="module")
def s3_index(vv: VideoVector) -> videovector.Index:
    return vv.indexes.create(name=unique("s3 import"))


@dataclass
class Imported:
    job: videovector.ImportJob
    seconds: float
    # completed_at as first read, and the job read again once the server settled it.
    first_completed_at: str | None


def run_import(
    vv: VideoVector, connector_id: str, index_id: str, prefix: str, pattern: str, recursive: bool
) -> Imported:
    started = time.monotonic()
    created = vv.import_jobs.create(
        connector_id=connector_id, index_id=index_id, source_prefix=prefix, file_pattern=pattern, recursive=recursive
    )
    assert created.status in {"pending", "scanning", "importing"}, created
    assert created.connector_id == connector_id and created.target_index_id == index_id, created
    job = vv.import_jobs.wait_for_completion(created.job_id, poll_interval=POLL_S, timeout=JOB_TIMEOUT_S)
    return Imported(job, time.monotonic() - started, job.completed_at)


@pytest.fixture(scope="module")
def s3_import(vv: VideoVector, s3_conn: videovector.Connector, s3_index: videovector.Index) -> Imported:
    """batch/ (not recursive, *.{mp4,jpg}) from S3: bikes.mp4, rocket.jpg, notvideo.mp4."""
    return run_import(vv, s3_conn.connector_id, s3_index.index_id, "batch/", MEDIA_PATTERN, recursive=False)


def video_ids_of(vv: VideoVector, index_id: str) -> set[str]:
    return {v.video_id for v in vv.indexes.list_videos(index_id, limit=100).auto_paging_iter()}


def post_local_connector(delivery: Delivery, body: dict[str, Any]) -> httpx.Response:
    """`POST /connectors/local` (not in the SDK)."""
    with delivery.server.http() as http:
        return http.post("/connectors/local", json=body)


# --------------------------------------------------------------------------------------------
# Connectors
# --------------------------------------------------------------------------------------------


def test_s3_connector_tests_and_browses_without_echoing_its_secret(
    delivery: Delivery, vv: VideoVector, s3_conn: videovector.Connector
) -> None:
    """create_s3 answers a Connector (no secret), test() lists the bucket, a missing bucket fails
    test() with a message and marks the connector failed; browse honours prefix, brace sets,
    path patterns and recursive=False; list/retrieve/delete."""
    c = s3_conn
    assert c.connector_id and c.provider == "s3" and c.status == "active", c
    assert (c.bucket, c.region, c.scopes, c.import_mode) == (BUCKET, "us-east-1", ["import", "export"], "new_only"), c
    assert c.export_base_path == "exports/base", c

    ok = vv.connectors.test(c.connector_id)
    assert ok.success is True and not ok.error_message, ok
    tested = vv.connectors.retrieve(c.connector_id)
    assert tested.last_test_result == "success" and tested.last_tested_at and tested.status == "active", tested

    bad = vv.connectors.create_s3(
        name=unique("no bucket"),
        bucket="vv-no-such-bucket",
        region="us-east-1",
        aws_access_key_id="AKIATESTKEY0002",
        aws_secret_access_key=S3_SECRET,
    )
    assert bad.scopes == ["import"] and bad.import_mode == "all", bad
    failed = vv.connectors.test(bad.connector_id)
    assert failed.success is False and failed.error_message, failed
    assert "vv-no-such-bucket" in failed.error_message or "NoSuchBucket" in failed.error_message, failed
    again = vv.connectors.retrieve(bad.connector_id)
    assert again.status == "failed" and again.last_test_result == "failed" and again.last_test_error, again

    def paths(**kwargs: Any) -> list[str]:
        files = vv.connectors.browse(c.connector_id, **kwargs)
        return [f.path for f in files]

    assert paths(prefix="batch/") == sorted(BATCH), "recursive listing of batch/, sorted by path"
    assert paths(prefix="batch", pattern=MEDIA_PATTERN) == [
        "batch/bikes.mp4",
        "batch/nested/flower.jpg",
        "batch/notvideo.mp4",
        "batch/rocket.jpg",
    ], "a brace set matches file names at every depth"
    assert paths(prefix="batch/", recursive=False) == [
        "batch/bikes.mp4",
        "batch/notes.txt",
        "batch/notvideo.mp4",
        "batch/rocket.jpg",
    ], "recursive=False lists the prefix's own level only"
    assert paths(prefix="batch/", pattern=MEDIA_PATTERN, recursive=False) == [
        "batch/bikes.mp4",
        "batch/notvideo.mp4",
        "batch/rocket.jpg",
    ]
    assert paths(prefix="batch/", pattern="nested/*.jpg") == ["batch/nested/flower.jpg"], "a pattern with / is a path"
    assert paths(prefix="batch/", pattern="*.mov") == []
    assert paths(prefix="nothing-here/") == []
    rocket = next(f for f in vv.connectors.browse(c.connector_id, prefix="batch/", pattern="rocket.*"))
    assert rocket.name == "rocket.jpg" and rocket.extension == "jpg", rocket
    assert rocket.size_bytes == (MEDIA / "rocket.jpg").stat().st_size, rocket
    assert rocket.content_type == "image/jpeg" and datetime.fromisoformat(rocket.last_modified), rocket
    with pytest.raises(VideoVectorError) as bad_glob:
        vv.connectors.browse(c.connector_id, prefix="batch/", pattern="*.{mp4")
    assert bad_glob.value.status_code in {400, 422}, bad_glob.value

    listed = {x.connector_id: x for x in vv.connectors.list()}
    assert {c.connector_id, bad.connector_id} <= set(listed), listed
    deleted = vv.connectors.delete(bad.connector_id)
    assert bad.connector_id in deleted.message, deleted
    with pytest.raises(NotFoundError):
        vv.connectors.retrieve(bad.connector_id)
    with pytest.raises(NotFoundError):
        vv.connectors.test(bad.connector_id)
    assert bad.connector_id not in {x.connector_id for x in vv.connectors.list()}

    assert S3_SECRET.encode() not in delivery.raw_replies(), "an S3 secret key came back in a reply"


def test_gcs_connector_creation_checks_the_service_account_file(delivery: Delivery, vv: VideoVector) -> None:
    """create_gcs (multipart): a credentials file that is not a service-account key is 400; a
    valid-looking one makes a connector that never shows the key. No GCS to reach here."""
    with pytest.raises(VideoVectorError) as refused:
        vv.connectors.create_gcs(
            name=unique("gcs"),
            bucket="vv-gcs",
            gcp_project_id="vv-project",
            credentials_file=_bytes_file(json.dumps({"type": "authorized_user", "client_id": "x"}).encode()),
        )
    assert refused.value.status_code == 400, refused.value
    with pytest.raises(VideoVectorError) as not_json:
        vv.connectors.create_gcs(
            name=unique("gcs"), bucket="vv-gcs", gcp_project_id="vv-project", credentials_file=_bytes_file(b"{not json")
        )
    assert not_json.value.status_code == 400, not_json.value

    key = {
        "type": "service_account",
        "project_id": "vv-project",
        "private_key_id": "0123456789abcdef",
        "private_key": GCS_PRIVATE_KEY,
        "client_email": "videovector@vv-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = delivery.tmp / "service-account.json"
    path.write_text(json.dumps(key))
    c = vv.connectors.create_gcs(
        name=unique("gcs"), bucket="vv-gcs", gcp_project_id="vv-project", credentials_file=path, scopes=["export"]
    )
    assert (c.provider, c.bucket, c.gcp_project_id, c.scopes) == ("gcs", "vv-gcs", "vv-project", ["export"]), c
    assert vv.connectors.retrieve(c.connector_id).connector_id == c.connector_id
    raw = delivery.raw_replies()
    for needle in (b"BEGIN PRIVATE KEY", b"MIIEvgIBADANBgkqhkiG9w0BAQEFAASC", b"0123456789abcdef"):
        at = raw.find(needle)
        assert at < 0, f"a service-account key came back: ...{raw[max(0, at - 300) : at + 100]!r}"
    vv.connectors.delete(c.connector_id)


def _bytes_file(data: bytes) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = "credentials.json"
    return f


def test_local_connector_is_confined_to_the_media_roots(delivery: Delivery, vv: VideoVector) -> None:
    """POST /connectors/local (not in the SDK): a folder outside every --media-root is 403, a
    missing one 400; one inside is a connector the SDK reads like any other."""
    outside = delivery.tmp / "outside"
    outside.mkdir(exist_ok=True)
    assert_error(post_local_connector(delivery, {"name": "outside", "path": str(outside)}), {403})
    # A path that climbs out of a root through `..` is judged by where it lands.
    climbing = delivery.local_root / ".." / "outside"
    assert_error(post_local_connector(delivery, {"name": "climb", "path": str(climbing)}), {403})
    assert_error(post_local_connector(delivery, {"name": "missing", "path": str(delivery.local_root / "nope")}), {400})
    r = post_local_connector(delivery, {"name": unique("local"), "path": str(delivery.local_root)})
    assert r.status_code == 201, r.text
    conn = vv.connectors.retrieve(r.json()["connector_id"])
    assert conn.status == "active" and conn.scopes == ["import"], conn
    assert vv.connectors.test(conn.connector_id).success
    assert [f.path for f in vv.connectors.browse(conn.connector_id, prefix="batch", pattern=MEDIA_PATTERN)] == [
        "batch/bikes.mp4",
        "batch/notvideo.mp4",
        "batch/rocket.jpg",
    ]


# --------------------------------------------------------------------------------------------
# Imports from connectors
# --------------------------------------------------------------------------------------------


def test_s3_import_brings_in_the_media_and_names_the_failed_file(
    vv: VideoVector, s3_conn: videovector.Connector, s3_index: videovector.Index, s3_import: Imported
) -> None:
    """batch/ from S3 with *.{mp4,jpg}, not recursive: 3 files, 2 imported (bikes.mp4,
    rocket.jpg), 1 failed (notvideo.mp4, named); the job is completed (not failed: some files
    made it); the ready media exist and are in the index; outputs and files page to the end."""
    job = s3_import.job
    assert job.status == "completed", job
    p = job.progress
    assert (p.total_files, p.imported, p.failed, p.skipped) == (3, 2, 1, 0), p
    expected_bytes = sum((MEDIA / n).stat().st_size for n in ("bikes.mp4", "rocket.jpg", "notvideo.mp4"))
    assert p.bytes_transferred == expected_bytes, p
    assert (job.source_prefix, job.file_pattern, job.recursive) == ("batch", MEDIA_PATTERN, False), job
    assert job.started_at and job.completed_at and job.error_message is None, job
    assert len(job.video_ids) == 2, job
    assert [f["file_name"] for f in job.failed_files] == ["notvideo.mp4"], job.failed_files

    in_index = video_ids_of(vv, s3_index.index_id)
    titles = {}
    for video_id in job.video_ids:
        video = vv.videos.retrieve(video_id)
        assert video.status == "processed", video
        assert video_id in in_index, f"{video_id} is not in the import's index"
        titles[video.title] = video.media_type
    assert titles == {"bikes.mp4": "video", "rocket.jpg": "image"}, titles

    outputs = list(vv.import_jobs.iter_outputs(job.job_id))
    assert [(o.file_name, o.status) for o in outputs] == [
        ("bikes.mp4", "ready"),
        ("notvideo.mp4", "failed"),
        ("rocket.jpg", "ready"),
    ], outputs
    assert {o.video_id for o in outputs if o.status == "ready"} == set(job.video_ids)
    # Page by one: the cursors walk the same outputs and end on null.
    paged, cursor, pages = [], None, 0
    while True:
        page = vv.import_jobs.outputs(job.job_id, limit=1, cursor=cursor)
        paged += page.items
        pages += 1
        assert page.total == 3, page
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        assert pages < 10, "the outputs cursor never ends"
    assert [o.file_id for o in paged] == [o.file_id for o in outputs] and pages == 3

    files = list(vv.import_jobs.iter_files(job.job_id))
    assert [(f.file_name, f.status) for f in files] == [
        ("bikes.mp4", "imported"),
        ("notvideo.mp4", "failed"),
        ("rocket.jpg", "imported"),
    ], files
    failed = list(vv.import_jobs.iter_files(job.job_id, failed_only=True))
    assert [f.file_name for f in failed] == ["notvideo.mp4"], failed
    assert failed[0].failure and "notvideo.mp4" in json.dumps(failed[0].failure), failed[0]
    first = vv.import_jobs.files(job.job_id, limit=2, failed_only=False)
    assert len(first.items) == 2 and first.next_cursor and first.total == 3, first
    rest = vv.import_jobs.files(job.job_id, limit=2, cursor=first.next_cursor)
    assert len(rest.items) == 1 and rest.next_cursor is None, rest

    assert job.job_id in {j.job_id for j in vv.import_jobs.list(status="completed")}
    assert job.job_id not in {j.job_id for j in vv.import_jobs.list(status="failed")}
    with pytest.raises(NotFoundError):
        vv.import_jobs.create(connector_id="conn_never_made", index_id=s3_index.index_id)
    with pytest.raises(NotFoundError):
        vv.import_jobs.create(connector_id=s3_conn.connector_id, index_id="idx_never_made")
    export_only = vv.connectors.create_s3(
        name=unique("export only"),
        bucket=BUCKET,
        region="us-east-1",
        aws_access_key_id="AKIATESTKEY0004",
        aws_secret_access_key=S3_SECRET,
        scopes=["export"],
    )
    with pytest.raises(VideoVectorError) as no_import_scope:
        vv.import_jobs.create(connector_id=export_only.connector_id, index_id=s3_index.index_id)
    assert 400 <= no_import_scope.value.status_code < 500, no_import_scope.value
    with pytest.raises(VideoVectorError) as bad_pattern:
        vv.import_jobs.create(connector_id=s3_conn.connector_id, index_id=s3_index.index_id, file_pattern="*.{mp4")
    assert 400 <= bad_pattern.value.status_code < 500, bad_pattern.value

    # A bucket that is not there fails the job while listing, with a message; nothing is added.
    missing = vv.connectors.create_s3(
        name=unique("missing bucket"),
        bucket="vv-missing-bucket",
        region="us-east-1",
        aws_access_key_id="AKIATESTKEY0005",
        aws_secret_access_key=S3_SECRET,
    )
    created = vv.import_jobs.create(connector_id=missing.connector_id, index_id=s3_index.index_id)
    with pytest.raises(ProcessingError) as failed_scan:
        vv.import_jobs.wait_for_completion(created.job_id, poll_interval=POLL_S, timeout=JOB_TIMEOUT_S)
    assert "vv-missing-bucket" in str(failed_scan.value) or "NoSuchBucket" in str(failed_scan.value), failed_scan.value
    failed_job = vv.import_jobs.retrieve(created.job_id)
    assert failed_job.status == "failed" and failed_job.error_message and failed_job.progress.total_files == 0
    assert video_ids_of(vv, s3_index.index_id) == in_index


def test_a_completed_import_keeps_its_completed_at(vv: VideoVector, s3_import: Imported) -> None:
    """The completed_at that wait_for_completion returned is the one a later read gives, and it
    is not before the imported media were ready."""
    time.sleep(0.7)  # past the server's next settling of finished imports (every 0.5 s)
    again = vv.import_jobs.retrieve(s3_import.job.job_id)
    ready = max(vv.videos.retrieve(v).updated_at for v in s3_import.job.video_ids)
    assert again.completed_at == s3_import.first_completed_at, (s3_import.first_completed_at, again.completed_at)
    assert s3_import.first_completed_at >= ready, f"completed_at {s3_import.first_completed_at} < media ready {ready}"


def test_new_only_skips_what_an_earlier_import_brought_in(
    vv: VideoVector, s3_conn: videovector.Connector, s3_index: videovector.Index, s3_import: Imported
) -> None:
    """The same prefix again on the new_only connector: the 2 ready files are skipped with a
    reason, notvideo.mp4 (failed before) is tried again; no media is added to the index."""
    before = video_ids_of(vv, s3_index.index_id)
    again = run_import(vv, s3_conn.connector_id, s3_index.index_id, "batch/", MEDIA_PATTERN, recursive=False).job
    p = again.progress
    assert (p.total_files, p.skipped, p.imported, p.failed) == (3, 2, 0, 1), again
    assert again.status == "completed", again
    files = {f.file_name: f for f in vv.import_jobs.iter_files(again.job_id)}
    assert {n: f.status for n, f in files.items()} == {
        "bikes.mp4": "skipped",
        "rocket.jpg": "skipped",
        "notvideo.mp4": "failed",
    }, files
    assert files["bikes.mp4"].skip_reason and files["rocket.jpg"].skip_reason, files
    # notvideo.mp4 is tried again on its own (failed) media item: the index is unchanged.
    assert video_ids_of(vv, s3_index.index_id) == before
    assert files["notvideo.mp4"].failure, files["notvideo.mp4"]


def test_retrying_a_connector_import_reimports_its_failed_file(
    vv: VideoVector, s3_index: videovector.Index, s3_import: Imported
) -> None:
    """import_jobs.retry of the finished S3 import runs the same job again over its failed file
    only: notvideo.mp4 fails again, the two imported files stay, the index is unchanged."""
    before = video_ids_of(vv, s3_index.index_id)
    retried = vv.import_jobs.retry(s3_import.job.job_id)
    assert retried.job_id == s3_import.job.job_id, "a connector import is retried in place"
    assert retried.status in {"pending", "scanning", "importing"}, retried
    done = vv.import_jobs.wait_for_completion(retried.job_id, poll_interval=POLL_S, timeout=JOB_TIMEOUT_S)
    p = done.progress
    assert done.status == "completed" and (p.total_files, p.imported, p.failed) == (3, 2, 1), done
    assert done.video_ids == s3_import.job.video_ids, (done.video_ids, s3_import.job.video_ids)
    assert [f.file_name for f in vv.import_jobs.iter_files(done.job_id, failed_only=True)] == ["notvideo.mp4"]
    assert video_ids_of(vv, s3_index.index_id) == before


def test_local_import_throughput_against_s3(
    delivery: Delivery, vv: VideoVector, s3_import: Imported, figures: Callable[[str], None]
) -> None:
    """The same three files from a local connector: the same outcome; the import rates of both
    (end to end: listing, transfer and ingest) go to the figures."""
    r = post_local_connector(delivery, {"name": unique("local batch"), "path": str(delivery.local_root)})
    assert r.status_code == 201, r.text
    index = vv.indexes.create(name=unique("local import"))
    local = run_import(vv, r.json()["connector_id"], index.index_id, "batch", MEDIA_PATTERN, recursive=False)
    p = local.job.progress
    assert local.job.status == "completed" and (p.total_files, p.imported, p.failed) == (3, 2, 1), local.job
    assert p.bytes_transferred == s3_import.job.progress.bytes_transferred, p
    assert len(video_ids_of(vv, index.index_id) & set(local.job.video_ids)) == 2

    for name, imp in (("S3 (moto)", s3_import), ("local folder", local)):
        n, size = imp.job.progress.total_files, imp.job.progress.bytes_transferred
        figures(
            f"connector import from {name}: {n} files, {size / 1e6:.2f} MB in {imp.seconds:.2f} s "
            f"(create to completed, ingest included): {n / imp.seconds:.1f} files/s, "
            f"{size / 1e6 / imp.seconds:.2f} MB/s"
        )


def test_azure_connector_through_azurite(delivery: Delivery, vv: VideoVector) -> None:
    """create_azure (emulator account; the service principal is stored, never shown), test,
    browse, and one import of rocket.jpg to completion; a missing container fails test()."""
    c = vv.connectors.create_azure(
        name=unique("azure"),
        storage_account="devstoreaccount1",
        container=CONTAINER,
        tenant_id="00000000-0000-0000-0000-000000000001",
        client_id="00000000-0000-0000-0000-000000000002",
        client_secret=AZURE_SECRET,
    )
    assert (c.provider, c.storage_account, c.container, c.status) == ("azure", "devstoreaccount1", CONTAINER, "active")
    assert vv.connectors.test(c.connector_id).success
    files = vv.connectors.browse(c.connector_id, prefix="pictures/", pattern="*.jpg")
    assert [(f.path, f.name, f.size_bytes) for f in files] == [
        ("pictures/rocket.jpg", "rocket.jpg", (MEDIA / "rocket.jpg").stat().st_size)
    ], files
    assert [f.path for f in vv.connectors.browse(c.connector_id)] == [
        "other/flower.jpg",
        "pictures/notes.txt",
        "pictures/rocket.jpg",
    ]
    assert [f.path for f in vv.connectors.browse(c.connector_id, recursive=False)] == [], "no blob at the root"

    index = vv.indexes.create(name=unique("azure import"))
    job = run_import(vv, c.connector_id, index.index_id, "pictures", "*.jpg", recursive=True).job
    assert job.status == "completed" and job.progress.total_files == 1 and job.progress.imported == 1, job
    video = vv.videos.retrieve(job.video_ids[0])
    assert video.status == "processed" and video.title == "rocket.jpg", video
    assert video_ids_of(vv, index.index_id) == set(job.video_ids)

    missing = vv.connectors.create_azure(
        name=unique("azure missing"),
        storage_account="devstoreaccount1",
        container="vv-no-such-container",
        tenant_id="t",
        client_id="c",
        client_secret=AZURE_SECRET,
    )
    result = vv.connectors.test(missing.connector_id)
    assert result.success is False and result.error_message, result
    assert AZURE_SECRET.encode() not in delivery.raw_replies(), "an Azure client secret came back in a reply"


# --------------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------------


def wait_export(vv: VideoVector, export_id: str) -> videovector.Export:
    return vv.exports.wait_for_completion(export_id, poll_interval=POLL_S, timeout=JOB_TIMEOUT_S)


def test_index_export_downloads_the_index(
    delivery: Delivery,
    vv: VideoVector,
    s3_index: videovector.Index,
    s3_import: Imported,
    figures: Callable[[str], None],
) -> None:
    """create_index_export (no body) -> completed -> download(): the document has the index's
    media, each with as many segments as videos.list_segments lists; file_size_bytes is the
    downloaded size; download_url() is None over http; retrieve/list agree."""
    started = time.monotonic()
    created = vv.exports.create_index_export(s3_index.index_id)
    assert created.export_id and created.status in {"pending", "processing", "completed"}, created
    done = wait_export(vv, created.export_id)
    seconds = time.monotonic() - started
    assert done.status == "completed" and done.export_type == "index" and done.target_id == s3_index.index_id, done
    assert done.destination_type == "download" and done.destination_connector_id is None, done
    assert done.download_url == f"/api/v2/exports/{created.export_id}/download", done
    assert done.file_size_bytes and done.file_size_bytes > 0, done

    dest = delivery.tmp / "index-export.json"
    written = vv.exports.download(created.export_id, dest)
    assert written == dest.stat().st_size == done.file_size_bytes, (written, done.file_size_bytes)
    doc = json.loads(dest.read_bytes())
    assert set(doc) >= {"export", "index", "prompt_runs", "media"}, set(doc)
    assert doc["export"]["export_id"] == created.export_id and doc["export"]["export_type"] == "index", doc["export"]
    assert doc["index"]["index_id"] == s3_index.index_id, doc["index"]
    assert doc["prompt_runs"] == [], "the index has no prompt runs"
    exported = {m["media"]["video_id"]: m for m in doc["media"]}
    assert len(exported) == len(doc["media"]), "a media item exported twice"
    assert set(exported) == video_ids_of(vv, s3_index.index_id), "the export's media are not the index's"
    for video_id, item in exported.items():
        listed = list(vv.videos.list_segments(video_id, limit=100).auto_paging_iter())
        assert len(item["segments"]) == len(listed), f"{video_id}: {len(item['segments'])} vs {len(listed)} listed"
        assert isinstance(item["transcript"], list) and item["results"] == {}, item.keys()
    assert b"".join(vv.exports.iter_download(created.export_id)) == dest.read_bytes()

    assert vv.exports.download_url(created.export_id) is None, "over http the SDK accepts no capability URL"
    assert vv.exports.retrieve(created.export_id).file_size_bytes == done.file_size_bytes
    assert created.export_id in {e.export_id for e in vv.exports.list()}
    assert [e.export_id for e in vv.exports.list(limit=1)] == [created.export_id], "newest first"
    figures(
        f"index export ({len(exported)} media, {sum(len(m['segments']) for m in exported.values())} segments): "
        f"{done.file_size_bytes} bytes, create to completed {seconds * 1000:.0f} ms"
    )


def test_export_to_the_s3_connector_lands_under_its_base_path(
    delivery: Delivery,
    vv: VideoVector,
    s3_conn: videovector.Connector,
    s3_index: videovector.Index,
    s3_import: Imported,
) -> None:
    """destination_connector_id + destination_subpath: the file is written to
    <export_base_path>/<subpath>/<export_id>.json in the bucket, destination_uri names it, and
    it is not downloadable from the server; a connector without the export scope is refused."""
    created = vv.exports.create_index_export(
        s3_index.index_id, destination_connector_id=s3_conn.connector_id, destination_subpath="/team/weekly/"
    )
    done = wait_export(vv, created.export_id)
    key = f"exports/base/team/weekly/{created.export_id}.json"
    assert done.destination_type == "connector" and done.destination_connector_id == s3_conn.connector_id, done
    assert done.destination_uri == f"s3://{BUCKET}/{key}", done
    assert done.download_url is None, done
    stored = delivery.s3_get(key)
    assert stored.status_code == 200, f"no object at {key}: {stored.status_code}"
    assert len(stored.content) == done.file_size_bytes, (len(stored.content), done.file_size_bytes)
    doc = stored.json()
    assert doc["export"]["export_id"] == created.export_id and doc["index"]["index_id"] == s3_index.index_id
    assert {m["media"]["video_id"] for m in doc["media"]} == video_ids_of(vv, s3_index.index_id)
    with pytest.raises(ConflictError):
        vv.exports.download(created.export_id, delivery.tmp / "not-here.json")
    assert not (delivery.tmp / "not-here.json").exists()

    import_only = vv.connectors.create_s3(
        name=unique("import only"),
        bucket=BUCKET,
        region="us-east-1",
        aws_access_key_id="AKIATESTKEY0003",
        aws_secret_access_key=S3_SECRET,
    )
    with pytest.raises(VideoVectorError) as refused:
        vv.exports.create_index_export(s3_index.index_id, destination_connector_id=import_only.connector_id)
    assert 400 <= refused.value.status_code < 500, refused.value
    with pytest.raises(VideoVectorError) as no_connector:
        vv.exports.create_index_export(s3_index.index_id, destination_subpath="team")
    assert 400 <= no_connector.value.status_code < 500, no_connector.value
    with pytest.raises(VideoVectorError) as climbing:
        vv.exports.create_index_export(
            s3_index.index_id, destination_connector_id=s3_conn.connector_id, destination_subpath="../../etc"
        )
    assert 400 <= climbing.value.status_code < 500, climbing.value


def test_export_requests_that_name_the_wrong_things(
    delivery: Delivery, vv: VideoVector, s3_index: videovector.Index, s3_import: Imported
) -> None:
    """A prompt run of another index in prompt_run_ids is refused (4xx); an unknown index, run or
    export is 404; a prompt-run export holds that run."""
    prompt = vv.prompts.create(name=unique("delivery prompt"), prompt_text=PROMPT_TEXT, json_schema=SCHEMA)
    other = vv.indexes.create(name=unique("other index"))
    # A run on the S3 index, cancelled at once: only its id and index matter here.
    rocket = next(v for v in s3_import.job.video_ids if vv.videos.retrieve(v).title == "rocket.jpg")
    run = vv.prompt_runs.execute(
        prompt_id=prompt.prompt_id,
        target={"type": "videos", "video_ids": [rocket], "index_id": s3_index.index_id},
    )
    vv.prompt_runs.cancel(run.run_id)
    run = vv.prompt_runs.wait_for_completion(run.run_id, poll_interval=POLL_S, timeout=JOB_TIMEOUT_S)

    with pytest.raises(VideoVectorError) as foreign:
        vv.exports.create_index_export(other.index_id, prompt_run_ids=[run.run_id])
    assert 400 <= foreign.value.status_code < 500 and foreign.value.status_code != 404, foreign.value
    with pytest.raises(NotFoundError):
        vv.exports.create_index_export("idx_never_made")
    with pytest.raises(NotFoundError):
        vv.exports.create_prompt_run_export("run_never_made")
    with pytest.raises(NotFoundError):
        vv.exports.retrieve("exp_never_made")

    created = vv.exports.create_prompt_run_export(run.run_id)
    done = wait_export(vv, created.export_id)
    assert done.export_type == "prompt_run" and done.target_id == run.run_id, done
    doc = json.loads(b"".join(vv.exports.iter_download(created.export_id)))
    assert [r["run_id"] for r in doc["prompt_runs"]] == [run.run_id], doc["prompt_runs"]
    assert doc["index"]["index_id"] == s3_index.index_id

    scoped = wait_export(vv, vv.exports.create_index_export(s3_index.index_id, prompt_run_ids=[run.run_id]).export_id)
    doc = json.loads(b"".join(vv.exports.iter_download(scoped.export_id)))
    assert [r["run_id"] for r in doc["prompt_runs"]] == [run.run_id], doc["prompt_runs"]
    assert all(set(m["results"]) <= {run.run_id} for m in doc["media"]), [m["results"].keys() for m in doc["media"]]


def test_parquet_and_jsonl_exports_load_in_other_tools(
    delivery: Delivery, vv: VideoVector, s3_index: videovector.Index, s3_import: Imported
) -> None:
    """`format` (not in the SDK, sent raw): parquet is one flat table that DuckDB reads, with a
    row per segment of every media item and the export header in its key-value metadata;
    jsonl is a record per line; both download with their own content type (so over plain HTTP:
    the SDK's download accepts application/json only); an unknown format is a 400 naming the
    field."""
    import duckdb

    def create(fmt: str) -> httpx.Response:
        with delivery.server.http() as http:
            return http.post(f"/exports/index/{s3_index.index_id}", json={"format": fmt})

    refused = create("xlsx")
    assert refused.status_code == 400 and "format" in refused.text, refused.text

    created = create("parquet")
    assert created.status_code in (200, 201, 202), created.text
    done = wait_export(vv, created.json()["export_id"])
    assert done.status == "completed", done
    dest = delivery.tmp / "index-export.parquet"
    with delivery.server.http() as http:
        got = http.get(f"/exports/{done.export_id}/download")
    assert got.headers["content-type"] == "application/vnd.apache.parquet", got.headers
    dest.write_bytes(got.content)
    assert len(got.content) == done.file_size_bytes, (len(got.content), done.file_size_bytes)
    assert dest.read_bytes()[:4] == b"PAR1" == dest.read_bytes()[-4:], "not a Parquet file"

    db = duckdb.connect()
    rows = db.execute(
        "SELECT video_id, segment_id, record, start_time, end_time FROM read_parquet(?)", [str(dest)]
    ).fetchall()
    want = set()
    for video_id in video_ids_of(vv, s3_index.index_id):
        for seg in vv.videos.list_segments(video_id, limit=100).auto_paging_iter():
            want.add((video_id, seg.segment_id, "segment", seg.start_time, seg.end_time))
    assert set(rows) == want and len(rows) == len(want), (sorted(set(rows) ^ want), len(rows), len(want))
    header = db.execute(
        "SELECT decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = 'videovector.export'", [str(dest)]
    ).fetchone()
    assert header is not None and json.loads(header[0])["export_id"] == done.export_id, header

    created = create("jsonl")
    done = wait_export(vv, created.json()["export_id"])
    with delivery.server.http() as http:
        got = http.get(f"/exports/{done.export_id}/download")
    assert got.headers["content-type"] == "application/x-ndjson", got.headers
    records = [json.loads(line) for line in got.text.splitlines()]
    assert records[0]["type"] == "export" and records[1]["type"] == "index", records[:2]
    assert {r["media"]["video_id"] for r in records if r["type"] == "media"} == video_ids_of(vv, s3_index.index_id)
    assert sum(r["type"] == "segment" for r in records) == len(want)


# --------------------------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def hook_index(vv: VideoVector) -> videovector.Index:
    """The index the webhook tests' events come from."""
    return vv.indexes.create(name=unique("webhook events"))


@dataclass
class Hooks:
    main: videovector.WebhookWithSecret
    scoped: videovector.WebhookWithSecret
    imports: list[videovector.ImportJob]
    export_id: str


@pytest.fixture(scope="module")
def hooks(
    vv: VideoVector, receiver: WebhookReceiver, s3_conn: videovector.Connector, hook_index: videovector.Index
) -> Hooks:
    """Two webhooks on the four events, one scoped to the events' index (its first delivery is
    answered 500), one to another index; then an import that completes, one that completes
    partly and an export of the index."""
    other = vv.indexes.create(name=unique("webhook other"))
    receiver.plan["/main"] = [500]
    main = vv.webhooks.create(
        name=unique("main hook"),
        url=receiver.url("/main"),
        events=HOOK_EVENTS,
        index_ids=[hook_index.index_id],
        metadata={"team": "délivery ✓ 😀", "n": 1, "ratio": 0.25},
    )
    scoped = vv.webhooks.create(
        name=unique("other hook"), url=receiver.url("/scoped"), events=HOOK_EVENTS, index_ids=[other.index_id]
    )
    receiver.secrets |= {main.secret, scoped.secret}
    conn = s3_conn.connector_id
    whole = run_import(vv, conn, hook_index.index_id, "hooks/whole", MEDIA_PATTERN, recursive=True).job
    partial = run_import(vv, conn, hook_index.index_id, "hooks/partial", MEDIA_PATTERN, recursive=True).job
    assert whole.status == partial.status == "completed", (whole, partial)
    assert (whole.progress.imported, partial.progress.imported, partial.progress.failed) == (1, 1, 1)
    export = wait_export(vv, vv.exports.create_index_export(hook_index.index_id).export_id)
    return Hooks(main, scoped, [whole, partial], export.export_id)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_receipt(r: Receipt, secret: str) -> dict[str, Any]:
    """The receipt is signed with `secret`, its body is the canonical JSON of its payload and its
    headers agree with the payload; returns the payload."""
    assert r.headers.get("x-webhook-signature") == webhook_signature(secret, r.body), f"bad signature: {r.headers}"
    payload = r.json()
    assert r.body == json.dumps(payload, sort_keys=True).encode(), "the body is not json.dumps(payload, sort_keys=True)"
    assert r.headers.get("x-webhook-id") == payload["webhook_id"], (r.headers, payload)
    assert r.headers.get("x-event-type") == payload["event_type"], (r.headers, payload)
    if payload["event_type"] != "webhook.test":  # (test_a_test_delivery_names_its_delivery_id)
        assert r.headers.get("x-delivery-id") == payload.get("delivery_id"), (r.headers, payload)
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    return payload


def test_webhooks_deliver_each_event_once_signed_and_retried(
    vv: VideoVector,
    receiver: WebhookReceiver,
    hooks: Hooks,
    hook_index: videovector.Index,
    figures: Callable[[str], None],
) -> None:
    """Every subscribed event of the index arrives at the main webhook, signed with its secret;
    the delivery answered 500 is retried and ends delivered after 2 attempts; by X-Delivery-ID
    there is exactly one delivery per (event, webhook); the webhook scoped to another index gets
    nothing; the deliveries' records agree (list_deliveries, get_delivery)."""
    whole, partial = hooks.imports
    media_ids = set(whole.video_ids) | set(partial.video_ids)
    expected = {
        ("import_job.completed", whole.job_id),
        ("import_job.partial_completed", partial.job_id),
        ("export.ready", hooks.export_id),
    } | {("media.processing.completed", v) for v in media_ids}

    def deliveries() -> list[videovector.WebhookDelivery]:
        return vv.webhooks.list_deliveries(hooks.main.webhook_id, limit=100)

    done = poll(
        deliveries,
        lambda ds: len(ds) >= len(expected) and all(d.status == "delivered" for d in ds),
        timeout=DELIVERY_TIMEOUT_S,
        interval=0.2,
    )
    assert len(done) == len(expected), [(d.event_type, d.status) for d in done]

    receipts = receiver.on("/main")
    payloads = [check_receipt(r, hooks.main.secret) for r in receipts]
    by_delivery: dict[str, list[dict[str, Any]]] = {}
    for p in payloads:
        by_delivery.setdefault(p["delivery_id"], []).append(p)
    seen = set()
    per_event_and_hook: dict[tuple[str, str], set[str]] = {}
    for delivery_id, copies in by_delivery.items():
        p = copies[0]
        assert all(c == p for c in copies), f"the copies of {delivery_id} differ"
        per_event_and_hook.setdefault((p["event_id"], p["webhook_id"]), set()).add(delivery_id)
        assert p["webhook_id"] == hooks.main.webhook_id, p
        assert p["metadata"] == {"team": "délivery ✓ 😀", "n": 1, "ratio": 0.25}, p
        assert p["data"]["index_id"] == hook_index.index_id, p
        assert p["event_id"].startswith("evt_") and p["created_at"], p
        details = p["data"]["details"]
        if p["event_type"] == "media.processing.completed":
            seen.add((p["event_type"], p["data"]["video_id"]))
        elif p["event_type"] == "export.ready":
            seen.add((p["event_type"], details["export_id"]))
        else:
            seen.add((p["event_type"], details["import_job_id"]))
            assert details["index_id"] == hook_index.index_id, details
    assert seen == expected, f"received {sorted(seen)}, expected {sorted(expected)}"
    assert all(len(ids) == 1 for ids in per_event_and_hook.values()), per_event_and_hook
    assert len(by_delivery) == len(expected), "more deliveries than events"

    # The first POST was answered 500, and the same delivery came again and was accepted.
    first = receipts[0]
    assert first.answered == 500, first
    retried = [r for r in receipts if r.delivery_id == first.delivery_id]
    assert [r.answered for r in retried] == [500, 200], retried
    gap = retried[1].at - retried[0].at
    assert 1.2 <= gap <= 6, f"the retry came {gap:.2f} s after the 500 (expected about 2 s)"
    record = vv.webhooks.get_delivery(first.delivery_id)
    assert (record.status, record.attempts, record.response_status_code) == ("delivered", 2, 200), record
    assert record.completed_at and record.payload and record.payload["delivery_id"] == first.delivery_id, record
    assert record.delivery_id in {d.delivery_id for d in done}
    others = [d for d in done if d.delivery_id != first.delivery_id]
    assert all(d.attempts == 1 and d.response_status_code == 200 for d in others), others
    assert {d.delivery_id for d in vv.webhooks.list_deliveries(hooks.main.webhook_id, status="delivered")} == {
        d.delivery_id for d in done
    }
    assert vv.webhooks.list_deliveries(hooks.main.webhook_id, status="failed") == []
    assert len(vv.webhooks.list_deliveries(hooks.main.webhook_id, limit=2)) == 2

    assert receiver.on("/scoped") == [], "a webhook scoped to another index got an event"
    assert vv.webhooks.list_deliveries(hooks.scoped.webhook_id) == []
    main = vv.webhooks.retrieve(hooks.main.webhook_id)
    assert main.failure_count == 1 and main.last_failure_at and main.last_success_at, main

    # Latency from the event to its first receipt (the 500'd one included: that was its receipt).
    firsts: dict[str, float] = {}
    for r, p in zip(receipts, payloads):
        firsts.setdefault(r.delivery_id, r.at - parse_time(p["created_at"]))
    latencies = sorted(firsts.values())
    assert all(lat > -0.05 for lat in latencies), f"a delivery arrived before its event: {latencies}"
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))]
    figures(
        f"webhook delivery latency, event created_at to first receipt ({len(latencies)} deliveries, "
        f"so p99 is the slowest): "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )
    assert p50 < 2.0, f"median delivery latency {p50:.2f} s"


def test_webhook_management(
    delivery: Delivery,
    vv: VideoVector,
    receiver: WebhookReceiver,
    hooks: Hooks,
    hook_index: videovector.Index,
) -> None:
    """list_events names the 17 events; a non-loopback http URL and unknown events are 400;
    test() sends a signed webhook.test; rotate_secret switches the key (the old one no longer
    verifies); update changes only what it names and paused stops deliveries; a 4xx fails a
    delivery at once and retry_delivery sends it again; delete removes the webhook."""
    events = vv.webhooks.list_events()
    assert len(events) == 17 and set(events) == EVENT_NAMES, events

    for url in ("http://example.com/hook", "ftp://127.0.0.1/hook", "https://"):
        with pytest.raises(VideoVectorError) as refused:
            vv.webhooks.create(name="refused", url=url, events=["export.ready"])
        assert refused.value.status_code == 400, (url, refused.value)
    with pytest.raises(VideoVectorError) as unknown:
        vv.webhooks.create(name="refused", url=receiver.url("/x"), events=["video.exploded"])
    assert unknown.value.status_code == 400, unknown.value
    with pytest.raises(VideoVectorError) as empty:
        vv.webhooks.create(name="refused", url=receiver.url("/x"), events=[])
    assert empty.value.status_code == 400, empty.value
    https = vv.webhooks.create(name=unique("https"), url="https://hooks.example.com/vv", events=["export.ready"])
    assert https.url == "https://hooks.example.com/vv" and https.status == "active", https

    t = vv.webhooks.create(
        name=unique("tested"),
        url=receiver.url("/t"),
        events=["export.ready"],
        index_ids=[hook_index.index_id],
        metadata={"k": "v"},
    )
    assert t.secret and t.secret not in {hooks.main.secret, hooks.scoped.secret}, t
    receiver.secrets.add(t.secret)
    listed = {w.webhook_id: w for w in vv.webhooks.list()}
    assert t.webhook_id in listed and listed[t.webhook_id].events == ["export.ready"], listed
    got = vv.webhooks.retrieve(t.webhook_id)
    assert (got.url, got.index_ids, got.metadata, got.status) == (t.url, [hook_index.index_id], {"k": "v"}, "active")

    sent = vv.webhooks.test(t.webhook_id)
    assert sent.success is True and sent.status_code == 200, sent
    test_receipt = receiver.on("/t")[-1]
    payload = check_receipt(test_receipt, t.secret)
    assert payload["event_type"] == "webhook.test" and payload["webhook_id"] == t.webhook_id, payload

    rotated = vv.webhooks.rotate_secret(t.webhook_id)
    assert rotated.webhook_id == t.webhook_id and rotated.new_secret and rotated.new_secret != t.secret, rotated
    receiver.secrets.add(rotated.new_secret)
    assert vv.webhooks.test(t.webhook_id).success
    after = receiver.on("/t")[-1]
    assert after.verified_by == rotated.new_secret, "the test after rotation is not signed with the new secret"
    assert after.headers["x-webhook-signature"] != webhook_signature(t.secret, after.body), "signed with the old secret"
    check_receipt(after, rotated.new_secret)

    # A receiver that answers 410 fails a delivery at once (a 4xx is not retried).
    receiver.status["/gone"] = 410
    gone = vv.webhooks.create(
        name=unique("gone"), url=receiver.url("/gone"), events=["export.ready"], index_ids=[hook_index.index_id]
    )
    receiver.secrets.add(gone.secret)
    paused = vv.webhooks.update(t.webhook_id, status="paused")
    assert paused.status == "paused", paused
    assert (paused.name, paused.url, paused.events, paused.index_ids, paused.metadata) == (
        got.name,
        got.url,
        got.events,
        got.index_ids,
        got.metadata,
    ), "update changed keys it was not given"
    renamed = vv.webhooks.update(t.webhook_id, name="renamed hook", metadata={"k": "w"})
    assert (renamed.name, renamed.metadata, renamed.status) == ("renamed hook", {"k": "w"}, "paused"), renamed
    with pytest.raises(VideoVectorError) as bad_status:
        vv.webhooks.update(t.webhook_id, status="disabled")
    assert bad_status.value.status_code == 400, bad_status.value
    with pytest.raises(VideoVectorError) as bad_url:
        vv.webhooks.update(t.webhook_id, url="http://example.com/hook")
    assert bad_url.value.status_code == 400, bad_url.value

    before_t = len(receiver.on("/t"))
    export_id = wait_export(vv, vv.exports.create_index_export(hook_index.index_id).export_id).export_id
    failed = poll(
        lambda: vv.webhooks.list_deliveries(gone.webhook_id),
        lambda ds: len(ds) == 1 and ds[0].status == "failed",
        timeout=DELIVERY_TIMEOUT_S,
        interval=0.2,
    )[0]
    assert (failed.attempts, failed.response_status_code) == (1, 410), failed
    assert failed.error_message and failed.next_retry_at is None, failed
    assert failed.payload and failed.payload["data"]["details"]["export_id"] == export_id, failed.payload
    assert len(receiver.on("/gone")) == 1, "a 410 was retried"
    # The paused webhook got neither a delivery nor a record for the same export.
    assert len(receiver.on("/t")) == before_t, "a paused webhook received a delivery"
    assert vv.webhooks.list_deliveries(t.webhook_id) == [], "a paused webhook has deliveries"

    receiver.status["/gone"] = 200
    again = vv.webhooks.retry_delivery(failed.delivery_id)
    assert (again.delivery_id, again.status, again.attempts) == (failed.delivery_id, "delivered", 2), again
    assert again.response_status_code == 200 and again.error_message is None, again
    resent = receiver.on("/gone")
    assert len(resent) == 2 and resent[1].delivery_id == failed.delivery_id, resent
    check_receipt(resent[1], gone.secret)
    with pytest.raises(ConflictError):
        vv.webhooks.retry_delivery(failed.delivery_id)
    with pytest.raises(NotFoundError):
        vv.webhooks.get_delivery("dlv_never_made")

    for webhook_id in (t.webhook_id, gone.webhook_id, https.webhook_id):
        vv.webhooks.delete(webhook_id)
        with pytest.raises(NotFoundError):
            vv.webhooks.retrieve(webhook_id)
        with pytest.raises(NotFoundError):
            vv.webhooks.list_deliveries(webhook_id)
    with pytest.raises(NotFoundError):
        vv.webhooks.delete(t.webhook_id)
    assert t.webhook_id not in {w.webhook_id for w in vv.webhooks.list()}
    secrets = (t.secret, rotated.new_secret, hooks.main.secret, gone.secret)
    raw = delivery.raw_replies()
    # A secret appears in the reply that made it (create, rotate) and in no other.
    for secret in secrets:
        assert raw.count(secret.encode()) == 1, "a webhook secret was returned more than once"


@dataclass
class FailedExport:
    export_id: str
    index_id: str
    error: str
    everywhere: videovector.WebhookWithSecret
    scoped: videovector.WebhookWithSecret


@pytest.fixture(scope="module")
def failed_export(vv: VideoVector, receiver: WebhookReceiver, s3_index: videovector.Index) -> FailedExport:
    """Two webhooks on export.failed (one for every index, one scoped to the S3 index), then an
    export of the S3 index to a connector whose bucket is not there."""
    everywhere = vv.webhooks.create(name=unique("failures"), url=receiver.url("/failures"), events=["export.failed"])
    scoped = vv.webhooks.create(
        name=unique("scoped failures"),
        url=receiver.url("/scoped-failures"),
        events=["export.failed"],
        index_ids=[s3_index.index_id],
    )
    receiver.secrets |= {everywhere.secret, scoped.secret}
    nowhere = vv.connectors.create_s3(
        name=unique("no export bucket"),
        bucket="vv-missing-export-bucket",
        region="us-east-1",
        aws_access_key_id="AKIATESTKEY0008",
        aws_secret_access_key=S3_SECRET,
        scopes=["export"],
    )
    created = vv.exports.create_index_export(s3_index.index_id, destination_connector_id=nowhere.connector_id)
    with pytest.raises(ProcessingError) as failed:
        wait_export(vv, created.export_id)
    return FailedExport(created.export_id, s3_index.index_id, str(failed.value), everywhere, scoped)


def test_an_export_that_cannot_be_written_fails_and_says_why(
    vv: VideoVector, receiver: WebhookReceiver, failed_export: FailedExport
) -> None:
    """An export to a missing bucket ends failed (wait_for_completion raises ProcessingError
    with the reason), has no file, and its export.failed event is delivered."""
    assert "vv-missing-export-bucket" in failed_export.error or "NoSuchBucket" in failed_export.error, failed_export
    e = vv.exports.retrieve(failed_export.export_id)
    assert e.status == "failed" and e.error_message and e.download_url is None, e
    assert e.destination_type == "connector" and not e.destination_uri, e
    with pytest.raises(VideoVectorError) as not_ready:
        vv.exports.download(failed_export.export_id, io.BytesIO())
    assert 400 <= not_ready.value.status_code < 500, not_ready.value
    delivered = poll(
        lambda: vv.webhooks.list_deliveries(failed_export.everywhere.webhook_id),
        lambda ds: len(ds) == 1 and ds[0].status == "delivered",
        timeout=DELIVERY_TIMEOUT_S,
        interval=0.2,
    )[0]
    assert delivered.event_type == "export.failed", delivered
    (receipt,) = receiver.on("/failures")
    payload = check_receipt(receipt, failed_export.everywhere.secret)
    assert payload["event_type"] == "export.failed", payload
    assert payload["data"]["details"]["export_id"] == failed_export.export_id, payload
    assert payload["data"]["details"]["error_message"], payload


def test_export_failed_reaches_a_webhook_scoped_to_the_index(
    vv: VideoVector, receiver: WebhookReceiver, failed_export: FailedExport
) -> None:
    """export.failed of an index export names the index (as export.ready does), so a webhook
    scoped to that index receives it."""
    (receipt,) = receiver.on("/failures")
    assert receipt.json()["data"]["index_id"] == failed_export.index_id, receipt.json()["data"]
    scoped = poll(
        lambda: receiver.on("/scoped-failures"), lambda rs: len(rs) == 1, timeout=DELIVERY_TIMEOUT_S, interval=0.2
    )
    assert scoped[0].json()["data"]["details"]["export_id"] == failed_export.export_id


def test_creates_replay_under_the_same_idempotency_key(
    vv: VideoVector, s3_index: videovector.Index, s3_import: Imported, receiver: WebhookReceiver
) -> None:
    """The SDK sends an Idempotency-Key with every create; the same key again answers the first
    reply and makes nothing new (connector, import job, export, webhook)."""
    key = unique("idem")
    args = dict(
        name=unique("idem s3"),
        bucket=BUCKET,
        region="us-east-1",
        aws_access_key_id="AKIATESTKEY0006",
        aws_secret_access_key=S3_SECRET,
        scopes=["import", "export"],
    )
    first = vv.connectors.create_s3(**args, idempotency_key=f"{key}-conn")
    again = vv.connectors.create_s3(**args, idempotency_key=f"{key}-conn")
    assert again.connector_id == first.connector_id
    assert [c.connector_id for c in vv.connectors.list()].count(first.connector_id) == 1
    assert sum(c.name == args["name"] for c in vv.connectors.list()) == 1, "a replayed create made a second connector"

    job = vv.import_jobs.create(
        connector_id=first.connector_id,
        index_id=s3_index.index_id,
        source_prefix="batch/",
        file_pattern="rocket.jpg",
        recursive=False,
        idempotency_key=f"{key}-import",
    )
    replayed = vv.import_jobs.create(
        connector_id=first.connector_id,
        index_id=s3_index.index_id,
        source_prefix="batch/",
        file_pattern="rocket.jpg",
        recursive=False,
        idempotency_key=f"{key}-import",
    )
    assert replayed.job_id == job.job_id
    vv.import_jobs.wait_for_completion(job.job_id, poll_interval=POLL_S, timeout=JOB_TIMEOUT_S)
    assert sum(j.connector_id == first.connector_id for j in vv.import_jobs.list()) == 1

    export = vv.exports.create_index_export(s3_index.index_id, idempotency_key=f"{key}-export")
    replayed_export = vv.exports.create_index_export(s3_index.index_id, idempotency_key=f"{key}-export")
    assert replayed_export.export_id == export.export_id
    wait_export(vv, export.export_id)

    hook_args = dict(name=unique("idem hook"), url=receiver.url("/idem"), events=["prompt_run.failed"])
    hook = vv.webhooks.create(**hook_args, idempotency_key=f"{key}-hook")
    hook_again = vv.webhooks.create(**hook_args, idempotency_key=f"{key}-hook")
    assert hook_again.webhook_id == hook.webhook_id
    assert sum(w.name == hook_args["name"] for w in vv.webhooks.list()) == 1
    vv.webhooks.delete(hook.webhook_id)
    vv.connectors.delete(first.connector_id)


def test_delivery_routes_check_the_keys_scopes(
    delivery: Delivery, vv: VideoVector, s3_conn: videovector.Connector, s3_index: videovector.Index
) -> None:
    """A read key lists connectors, webhooks and exports but creates none (403); a write key
    creates but cannot delete a connector (admin); the event names need no key."""
    reader = vv.api_keys.create(name=unique("delivery read"), scopes=["read"])
    writer = vv.api_keys.create(name=unique("delivery write"), scopes=["write"])
    with delivery.server.client(reader.key) as r:
        assert s3_conn.connector_id in {c.connector_id for c in r.connectors.list()}
        assert r.connectors.browse(s3_conn.connector_id, prefix="batch/", recursive=False)
        assert isinstance(r.webhooks.list(), list) and isinstance(r.exports.list(), list)
        with pytest.raises(AuthorizationError):
            r.connectors.create_s3(
                name="x", bucket=BUCKET, region="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
            )
        with pytest.raises(AuthorizationError):
            r.import_jobs.create(connector_id=s3_conn.connector_id, index_id=s3_index.index_id)
        with pytest.raises(AuthorizationError):
            r.exports.create_index_export(s3_index.index_id)
        with pytest.raises(AuthorizationError):
            r.webhooks.create(name="x", url="https://example.com/x", events=["export.ready"])
    with delivery.server.client(writer.key) as w:
        made = w.connectors.create_s3(
            name=unique("writer's"),
            bucket=BUCKET,
            region="us-east-1",
            aws_access_key_id="AKIATESTKEY0007",
            aws_secret_access_key=S3_SECRET,
        )
        with pytest.raises(AuthorizationError):
            w.connectors.delete(made.connector_id)
    vv.connectors.delete(made.connector_id)
    with delivery.server.http(api_key=None) as anonymous:
        r = anonymous.get("/webhooks/events")
        assert r.status_code == 200 and set(r.json()) == EVENT_NAMES, r.text
        assert_error(anonymous.get("/connectors"), {401})
    for key in (reader, writer):
        vv.api_keys.delete(key.key_id)


def test_delivery_bodies_are_pythons_canonical_json_for_every_number(
    vv: VideoVector, receiver: WebhookReceiver
) -> None:
    """Metadata with small and large floats, big integers and non-ASCII text, echoed into a
    webhook.test delivery: the body is json.dumps(payload, sort_keys=True) byte for byte."""
    metadata = {
        "tiny": 1e-07,
        "small": 2.5e-05,
        "big": 1e20,
        "huge": 12345678901234567890,
        "text": "délivery ✓ 😀",
    }
    hook = vv.webhooks.create(
        name=unique("numbers"), url=receiver.url("/numbers"), events=["export.ready"], metadata=metadata
    )
    receiver.secrets.add(hook.secret)
    try:
        assert vv.webhooks.test(hook.webhook_id).success
        r = receiver.on("/numbers")[-1]
        payload = r.json()
        assert payload["metadata"] == metadata, payload["metadata"]
        assert r.body == json.dumps(payload, sort_keys=True).encode(), r.body
    finally:
        vv.webhooks.delete(hook.webhook_id)


def test_a_test_delivery_names_its_delivery_id(vv: VideoVector, receiver: WebhookReceiver, hooks: Hooks) -> None:
    """The payload of webhooks.test() carries the delivery_id its X-Delivery-ID header names, as
    every event delivery's payload does, so that one receiver de-duplicates both the same way."""
    assert vv.webhooks.test(hooks.main.webhook_id).success
    r = receiver.on("/main")[-1]
    payload = check_receipt(r, hooks.main.secret)
    assert payload["event_type"] == "webhook.test", payload
    assert payload.get("delivery_id") == r.delivery_id, (r.headers, payload)


def test_a_delivery_pending_at_sigterm_is_sent_once_after_the_restart(
    delivery: Delivery, vv: VideoVector, receiver: WebhookReceiver, hooks: Hooks, hook_index: videovector.Index
) -> None:
    """With the receiver down, an export's event fails to deliver (retrying); the server is
    stopped with SIGTERM, the receiver and a new server on the same folder start, and the event
    is delivered exactly once (by X-Delivery-ID) with the same payload."""
    receiver.stop()
    down = vv.webhooks.test(hooks.main.webhook_id)
    assert down.success is False and down.status_code is None and down.error, down
    before = {r.delivery_id for r in receiver.on("/main")}
    export_id = wait_export(vv, vv.exports.create_index_export(hook_index.index_id).export_id).export_id

    def pending() -> list[videovector.WebhookDelivery]:
        return [
            d
            for d in vv.webhooks.list_deliveries(hooks.main.webhook_id, limit=100)
            if d.payload and d.payload["data"]["details"].get("export_id") == export_id
        ]

    retrying = poll(pending, lambda ds: len(ds) == 1 and ds[0].attempts >= 1, timeout=DELIVERY_TIMEOUT_S, interval=0.1)
    waiting = retrying[0]
    assert waiting.status == "retrying" and waiting.next_retry_at and waiting.error_message, waiting

    status = stop_server(delivery.server.proc)
    assert status == 0, f"the server exited {status} after SIGTERM"
    receiver.start()
    server = delivery.folder.start()
    with server.client() as client:
        delivery.replies_of(client)
        done = poll(
            lambda: client.webhooks.get_delivery(waiting.delivery_id),
            lambda d: d.status == "delivered",
            timeout=DELIVERY_TIMEOUT_S,
            interval=0.2,
        )
        assert done.attempts >= 2 and done.response_status_code == 200, done
        time.sleep(0.5)  # room for a duplicate to show up
        records = [
            d
            for d in client.webhooks.list_deliveries(hooks.main.webhook_id, limit=100)
            if d.payload and d.payload["data"]["details"].get("export_id") == export_id
        ]
        assert [d.delivery_id for d in records] == [waiting.delivery_id], records

    arrived = [r for r in receiver.on("/main") if r.delivery_id not in before]
    ids = {r.delivery_id for r in arrived}
    assert ids == {waiting.delivery_id}, f"deliveries after the restart: {ids}"
    payloads = [check_receipt(r, hooks.main.secret) for r in arrived]
    assert all(p == payloads[0] for p in payloads), "the copies of the delivery differ"
    assert payloads[0]["event_type"] == "export.ready" and payloads[0]["data"]["details"]["export_id"] == export_id


def test_a_connector_import_completes_once_its_media_are_transcribed(delivery: Delivery) -> None:
    """speech.mp3 from the local connector: when the import reads completed, its ingest has
    ended, transcript included (as an upload's import job does): an export made at once holds
    the transcript. Last in the module: the transcription it starts is stopped by the teardown."""
    shutil.copyfile(MEDIA / "speech.mp3", delivery.local_root / "speech.mp3")
    with delivery.client() as vv:
        r = post_local_connector(delivery, {"name": unique("speech"), "path": str(delivery.local_root)})
        assert r.status_code == 201, r.text
        index = vv.indexes.create(name=unique("speech import"))
        job = run_import(vv, r.json()["connector_id"], index.index_id, "", "speech.mp3", recursive=False).job
        assert job.status == "completed" and job.progress.imported == 1, job
        export = wait_export(vv, vv.exports.create_index_export(index.index_id).export_id)
        doc = json.loads(b"".join(vv.exports.iter_download(export.export_id)))
        (item,) = doc["media"]
        assert item["media"]["media_type"] == "audio" and item["segments"], item["media"]
        assert item["transcript"], "the import completed before speech.mp3 was transcribed"
