"""Markers, collections and index automations: routes the SDK has no method for (driven with
httpx and the admin key), and the marker fields the SDK's models read (`marker`,
`metadata_markers`, `extracted_metadata_markers`) on videos, segments, runs and results.

The module has a server of its own (`videovector serve` with a temporary `--media-root` for the
local connectors of the automations) on a data folder of its own; its tests run in file order and
share it. Five small pictures are ingested (three in index A, one in index B, one in the
playground) and one prompt run (with a video-level part) covers rocket.jpg; it starts with the
first test and is waited for by the marker tests at the end, so the model works while the
collections and automations are tested.

Run with `bash scripts/sdk_test.sh tests/sdk/test_organize.py`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import videovector
from sdkserver import (
    MEDIA,
    PROMPT_TEXT,
    RUN_TIMEOUT_S,
    SCHEMA,
    DataFolder,
    Ingested,
    Server,
    assert_error,
    assert_image,
    create_local_connector,
    poll,
    stop_server,
    unique,
    upload_many,
)
from videovector import MarkerInfo, VideoVector

MARKER_KEYS = {"marker_id", "target_type", "target_id", "field_path", "color", "note", "created_at", "updated_at"}
COLLECTION_KEYS = {
    "collection_id",
    "name",
    "description",
    "parent_type",
    "created_at",
    "updated_at",
    "video_count",
    "thumbnails",
}
# The run's prompt: SCHEMA (place, people) per segment and one video-level field, so that the
# run has a video result to mark.
VIDEO_LEVEL: dict[str, Any] = {
    "instructions_text": "Say how busy the picture is as a whole.",
    "json_schema": {
        "type": "object",
        "properties": {"overall": {"type": "string", "enum": ["quiet", "busy"]}},
        "required": ["overall"],
    },
}
RUN_DONE = {"completed", "completed_with_failures"}
# The pictures, by title (title order: chelsea, china, coffee, flower, rocket), and where each goes.
PICTURES = {
    "rocket": "rocket.jpg",
    "flower": "flower.jpg",
    "china": "china.jpg",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
}
IN_A = ("rocket", "flower", "china")
IN_B = ("chelsea",)
# How long the import automation is watched for an import that its 5m debounce must hold back.
DEBOUNCE_WATCH_S = 4.0


# --------------------------------------------------------------------------------------------
# Fixtures: the module's server, its media, the prompt run
# --------------------------------------------------------------------------------------------


@dataclass
class Organize:
    folder: DataFolder
    # The server's second --media-root: watched/ (import automation) and outbox/ (export).
    local_root: Path

    @property
    def server(self) -> Server:
        return self.folder.current


@pytest.fixture(scope="module")
def org(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: Path, report_folder: Callable[[DataFolder], None]
) -> Iterator[Organize]:
    root: Path = tmp_path_factory.mktemp("organize")
    local_root = root / "local"
    for sub in ("watched/incoming", "outbox"):
        (local_root / sub).mkdir(parents=True)
    (root / "folder").mkdir()
    folder = DataFolder(root / "folder", tiny_clip, media_roots=(MEDIA, local_root))
    report_folder(folder)
    try:
        folder.start()
        yield Organize(folder, local_root)
    finally:
        statuses = [(n, stop_server(s.proc)) for n, s in enumerate(folder.servers) if s.proc.poll() is None]
    bad = [(n, status) for n, status in statuses if status != 0]
    if bad:
        pytest.fail(f"the module's server #{bad[0][0]} exited {bad[0][1]} after SIGTERM (expected 0)")


@pytest.fixture(scope="module")
def vv(org: Organize) -> Iterator[VideoVector]:
    with org.server.client() as client:
        yield client


@pytest.fixture(scope="module")
def http(org: Organize) -> Iterator[httpx.Client]:
    """A raw client on /api/v2 with the admin key."""
    with org.server.http() as client:
        yield client


@pytest.fixture(scope="module")
def index_a(vv: VideoVector) -> videovector.Index:
    return vv.indexes.create(name=unique("organize A"))


@pytest.fixture(scope="module")
def index_b(vv: VideoVector) -> videovector.Index:
    return vv.indexes.create(name=unique("organize B"))


@pytest.fixture(scope="module")
def media(vv: VideoVector, index_a: videovector.Index, index_b: videovector.Index) -> dict[str, str]:
    """The five pictures, ingested: title -> video id."""
    where = {t: index_a.index_id for t in IN_A} | {t: index_b.index_id for t in IN_B} | {"coffee": None}
    done: list[Ingested] = upload_many(vv, [(MEDIA / PICTURES[t], t, where[t]) for t in PICTURES])
    return {t: d.video_id for t, d in zip(PICTURES, done)}


@pytest.fixture(scope="module")
def prompt(vv: VideoVector) -> videovector.Prompt:
    return vv.prompts.create(
        name=unique("organize scene"), prompt_text=PROMPT_TEXT, json_schema=SCHEMA, video_level=VIDEO_LEVEL
    )


@pytest.fixture(scope="module")
def started_run(
    vv: VideoVector, prompt: videovector.Prompt, media: dict[str, str], index_a: videovector.Index
) -> videovector.PromptRun:
    """The run over rocket.jpg, started (the first test asks for it; the marker tests wait)."""
    return vv.prompt_runs.execute(
        prompt_id=prompt.prompt_id,
        target={"type": "videos", "video_ids": [media["rocket"]], "index_id": index_a.index_id},
    )


@pytest.fixture(scope="module")
def run(vv: VideoVector, started_run: videovector.PromptRun) -> videovector.PromptRun:
    done = vv.prompt_runs.wait_for_completion(started_run.run_id, poll_interval=0.25, timeout=RUN_TIMEOUT_S)
    assert done.status in RUN_DONE and done.total_segments == 1, done
    return done


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def put_marker(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.put("/markers", json=body)


def marker(http: httpx.Client, **body: Any) -> dict[str, Any]:
    """PUT /markers, which must answer the marker (200 or 201) with every field."""
    r = put_marker(http, **body)
    assert r.status_code in {200, 201}, f"PUT /markers {body}: {r.status_code} {r.text[:500]}"
    m = r.json()
    assert set(m) == MARKER_KEYS, m
    want = {k: body.get(k) for k in ("target_type", "target_id", "field_path", "color", "note")}
    assert {k: m[k] for k in want} == want, (m, body)
    assert m["marker_id"] and datetime.fromisoformat(m["created_at"]) <= datetime.fromisoformat(m["updated_at"]), m
    return m


def info(m: dict[str, Any]) -> MarkerInfo:
    """The MarkerInfo the SDK should read for marker `m`."""
    return MarkerInfo(marker_id=m["marker_id"], color=m["color"], note=m["note"], updated_at=m["updated_at"])


def markers_of(http: httpx.Client, **params: str) -> list[dict[str, Any]]:
    r = http.get("/markers", params=params)
    assert r.status_code == 200 and isinstance(r.json(), list), f"{r.status_code} {r.text[:500]}"
    return r.json()


def collection(http: httpx.Client, name: str, description: str | None = None) -> dict[str, Any]:
    body = {"name": name} if description is None else {"name": name, "description": description}
    r = http.post("/collections", json=body)
    assert r.status_code == 201, f"{r.status_code} {r.text[:500]}"
    c = r.json()
    assert set(c) == COLLECTION_KEYS, c
    return c


def add_member(http: httpx.Client, collection_id: str, video_id: str) -> dict[str, Any]:
    r = http.post(f"/collections/{collection_id}/videos", json={"video_id": video_id})
    assert r.status_code == 201, f"add {video_id}: {r.status_code} {r.text[:500]}"
    assert set(r.json()) == COLLECTION_KEYS, r.json()
    return r.json()


def members(http: httpx.Client, collection_id: str, **params: Any) -> dict[str, Any]:
    """GET /collections/{id}/videos (one page); every item must read as the SDK's Video."""
    r = http.get(f"/collections/{collection_id}/videos", params=params)
    assert r.status_code == 200, f"{params}: {r.status_code} {r.text[:500]}"
    page = r.json()
    assert set(page) == {"data", "page", "page_size", "total"}, page
    page["videos"] = [videovector.Video.model_validate(v) for v in page["data"]]
    return page


# --------------------------------------------------------------------------------------------
# Markers: the routes
# --------------------------------------------------------------------------------------------


def test_marker_requests_that_name_the_wrong_things(
    http: httpx.Client, vv: VideoVector, media: dict[str, str], started_run: videovector.PromptRun
) -> None:
    """A bad target_type, neither color nor note, or a field_path on a video or segment is 400;
    a target that does not exist (of every type) is 404; DELETE of an unknown marker is 404.
    None of them stores anything. (Asking for `started_run` starts the module's run now.)"""
    rocket = media["rocket"]
    segment = vv.videos.list_segments(rocket).data[0].segment_id
    assert markers_of(http) == [], "a fresh server has no markers"
    assert_error(put_marker(http, target_type="index", target_id=rocket, color="red"), {400})
    assert_error(put_marker(http, target_type="video", target_id=rocket), {400})
    assert_error(put_marker(http, target_type="video", target_id=rocket, color=None, note=None), {400})
    assert_error(put_marker(http, target_type="video", target_id=rocket, field_path="place", color="red"), {400})
    assert_error(put_marker(http, target_type="segment", target_id=segment, field_path="place", note="n"), {400})
    run_id = started_run.run_id
    for target_type, target_id in (
        ("video", "vid_never_made"),
        ("segment", "seg_never_made"),
        ("prompt", "prompt_never_made"),
        ("prompt_run", "run_never_made"),
        ("segment_result", f"run_never_made/{segment}"),
        ("segment_result", f"{run_id}/seg_never_made"),
        ("video_result", f"run_never_made/{rocket}"),
        ("video_result", f"{run_id}/{media['flower']}"),  # flower is not in the run
    ):
        assert_error(put_marker(http, target_type=target_type, target_id=target_id, color="red"), {404})
    assert_error(http.delete("/markers/mrk_never_made"), {404})
    assert markers_of(http) == [], "a refused PUT stored a marker"


def test_a_marker_is_replaced_in_place_listed_and_deleted_by_an_admin(
    org: Organize, http: httpx.Client, vv: VideoVector, media: dict[str, str]
) -> None:
    """One marker per (target, field): a second PUT replaces color and note (a note left out is
    cleared) and keeps marker_id and created_at; GET /markers filters by type and id; the SDK reads
    it as `marker` of the video and of the segment; DELETE needs the admin scope (a write key is
    403), answers {message, success}, and the SDK then reads an empty marker; again 404."""
    flower = media["flower"]
    segment = vv.videos.list_segments(flower).data[0].segment_id
    first = marker(http, target_type="video", target_id=flower, color="red", note="check the petals")
    assert first["field_path"] is None
    time.sleep(0.01)
    second = marker(http, target_type="video", target_id=flower, color="green", note="checked")
    assert (second["marker_id"], second["created_at"]) == (first["marker_id"], first["created_at"]), (first, second)
    assert second["updated_at"] >= first["updated_at"], (first, second)
    third = marker(http, target_type="video", target_id=flower, color="blue")
    assert third["marker_id"] == first["marker_id"] and third["note"] is None, third
    assert vv.videos.retrieve(flower).marker == info(third)

    on_segment = marker(http, target_type="segment", target_id=segment, note="the best frame")
    assert on_segment["marker_id"] != first["marker_id"] and on_segment["color"] is None
    assert [m["marker_id"] for m in markers_of(http, target_type="video", target_id=flower)] == [first["marker_id"]]
    assert markers_of(http, target_type="segment", target_id=segment) == [on_segment]
    assert {m["marker_id"] for m in markers_of(http)} == {first["marker_id"], on_segment["marker_id"]}
    assert markers_of(http, target_type="video", target_id=media["rocket"]) == []
    listed = vv.videos.list_segments(flower).data
    assert [s.marker for s in listed] == [info(on_segment)], listed
    assert vv.videos.retrieve(flower).marker == info(third), "the segment's marker is not the video's"

    key = vv.api_keys.create(name=unique("organize writer"), scopes=["write"])
    with org.server.http(api_key=key.key) as writer:
        assert_error(writer.delete(f"/markers/{first['marker_id']}"), {403})
        assert writer.get("/markers").status_code == 403, "listing needs the read scope"
    assert len(markers_of(http, target_type="video", target_id=flower)) == 1, "a refused DELETE deleted"

    for m in (first, on_segment):
        r = http.delete(f"/markers/{m['marker_id']}")
        assert r.status_code == 200 and r.json()["success"] is True and isinstance(r.json()["message"], str), r.text
        assert_error(http.delete(f"/markers/{m['marker_id']}"), {404})
    assert vv.videos.retrieve(flower).marker == MarkerInfo()
    assert vv.videos.list_segments(flower).data[0].marker == MarkerInfo()
    assert markers_of(http) == []


# --------------------------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------------------------


def test_collection_lifecycle_and_numbered_pages(http: httpx.Client) -> None:
    """POST answers 201 with every field (no members, no thumbnails); a second collection of the
    same name is 409, one without a name 400; the list is newest first in numbered pages (page from
    1, page_size 1 to 100, else 400); GET, PATCH (neither field: 400; a taken name: 409) and
    DELETE (twice: 404)."""
    empty = http.get("/collections", params={"page": 1, "page_size": 10})
    assert empty.status_code == 200 and empty.json() == {"data": [], "page": 1, "page_size": 10, "total": 0}, empty.text
    first = collection(http, unique("trips"), "holiday pictures")
    assert (first["description"], first["video_count"], first["thumbnails"]) == ("holiday pictures", 0, []), first
    assert isinstance(first["parent_type"], str) and first["parent_type"], first
    assert datetime.fromisoformat(first["created_at"]) and datetime.fromisoformat(first["updated_at"])
    time.sleep(0.01)
    second = collection(http, unique("skies"))
    assert second["description"] is None and second["collection_id"] != first["collection_id"], second
    assert_error(http.post("/collections", json={"name": first["name"], "description": "again"}), {409})
    assert_error(http.post("/collections", json={"description": "no name"}), {400, 422})

    def page(**params: int) -> dict[str, Any]:
        r = http.get("/collections", params=params)
        assert r.status_code == 200, f"{params}: {r.status_code} {r.text[:300]}"
        return r.json()

    assert [c["collection_id"] for c in page(page=1, page_size=100)["data"]] == [
        second["collection_id"],
        first["collection_id"],
    ], "newest first"
    p1, p2, p3 = page(page=1, page_size=1), page(page=2, page_size=1), page(page=3, page_size=1)
    assert (p1["page"], p1["page_size"], p1["total"]) == (1, 1, 2), p1
    assert [c["collection_id"] for c in p1["data"] + p2["data"]] == [second["collection_id"], first["collection_id"]]
    assert p2["page"] == 2 and p3["data"] == [] and p3["total"] == 2, (p2, p3)
    assert p1["data"][0] == second, "a listed collection is the created one"
    for bad in ({"page": 0}, {"page_size": 0}, {"page_size": 101}, {"page": 1, "page_size": 1000}):
        assert_error(http.get("/collections", params=bad), {400})

    cid = first["collection_id"]
    assert http.get(f"/collections/{cid}").json() == first
    assert_error(http.get("/collections/col_never_made"), {404})
    assert_error(http.patch(f"/collections/{cid}", json={}), {400})
    assert_error(http.patch(f"/collections/{cid}", json={"name": second["name"]}), {409})
    assert_error(http.patch("/collections/col_never_made", json={"name": unique("x")}), {404})
    time.sleep(0.01)
    described = http.patch(f"/collections/{cid}", json={"description": "summer only"})
    assert described.status_code == 200, described.text
    d = described.json()
    assert (d["name"], d["description"], d["created_at"]) == (first["name"], "summer only", first["created_at"]), d
    assert d["updated_at"] > first["updated_at"], d
    renamed = http.patch(f"/collections/{cid}", json={"name": unique("summer")}).json()
    assert renamed["description"] == "summer only" and renamed["name"] != first["name"], renamed
    assert http.get(f"/collections/{cid}").json() == renamed

    for c in (first, second):
        r = http.delete(f"/collections/{c['collection_id']}")
        assert r.status_code == 200 and r.json()["success"] is True and isinstance(r.json()["message"], str), r.text
        assert_error(http.get(f"/collections/{c['collection_id']}"), {404})
        assert_error(http.delete(f"/collections/{c['collection_id']}"), {404})
    assert page(page=1, page_size=10)["total"] == 0
    # The freed name can be taken again.
    again = collection(http, second["name"])
    assert http.delete(f"/collections/{again['collection_id']}").status_code == 200


def test_collection_members_across_indexes(
    org: Organize,
    http: httpx.Client,
    vv: VideoVector,
    media: dict[str, str],
    index_a: videovector.Index,
    index_b: videovector.Index,
) -> None:
    """Media from two indexes and the playground: each add answers 201 with the count and up to
    four thumbnail URLs, each of which serves an image with the key; a member twice is 409, an
    unknown media or collection 404, media still ingesting 400 (added once done); the videos
    page by number and sort by title, added_at and created_at both ways (anything else 400);
    a removed member is gone (again: 404) and its media stays; deleting media drops it from the
    collection; deleting the collection keeps the media."""
    c = collection(http, unique("mixed"), "across indexes")
    cid = c["collection_id"]
    order = ["rocket", "chelsea", "coffee", "flower", "china"]  # A, B, playground, A, A
    for n, title in enumerate(order, start=1):
        got = add_member(http, cid, media[title])
        assert got["video_count"] == n and len(got["thumbnails"]) == min(n, 4), got
        time.sleep(0.01)  # distinct added_at
    thumbnails = got["thumbnails"]
    assert len(set(thumbnails)) == 4, thumbnails
    with org.server.http() as keyed:
        for url in thumbnails:
            assert_image(keyed.get(org.server.absolute(url)))
    assert http.get(f"/collections/{cid}").json() == got

    assert_error(http.post(f"/collections/{cid}/videos", json={"video_id": media["rocket"]}), {409})
    assert_error(http.post(f"/collections/{cid}/videos", json={"video_id": "vid_never_made"}), {404})
    assert_error(http.post("/collections/col_never_made/videos", json={"video_id": media["rocket"]}), {404})
    bikes = vv.videos.upload(file=MEDIA / "bikes.mp4", title="bikes", index_id=index_b.index_id)
    bikes_id = bikes.outputs.items[0].video_id
    busy = http.post(f"/collections/{cid}/videos", json={"video_id": bikes_id})
    bikes_job = vv.import_jobs.wait_for_completion(bikes.job_id, poll_interval=0.2, timeout=120)
    assert_error(busy, {400})
    assert bikes_job.status == "completed" and bikes_job.video_ids == [bikes_id], bikes_job
    assert add_member(http, cid, bikes_id)["video_count"] == 6, "once processed it can be added"
    order.append("bikes")
    ids = {**media, "bikes": bikes_id}

    everything = members(http, cid, page=1, page_size=100)
    assert everything["total"] == 6 and {v.video_id for v in everything["videos"]} == {ids[t] for t in order}
    paged = [members(http, cid, page=p, page_size=4) for p in (1, 2, 3)]
    assert [len(p["videos"]) for p in paged] == [4, 2, 0] and all(p["total"] == 6 for p in paged), paged
    assert [v.video_id for p in paged for v in p["videos"]] == [v.video_id for v in everything["videos"]]

    def listed(sort_by: str, sort_order: str) -> list[videovector.Video]:
        return members(http, cid, page=1, page_size=100, sort_by=sort_by, sort_order=sort_order)["videos"]

    assert [v.title for v in listed("title", "asc")] == sorted(order)
    assert [v.title for v in listed("title", "desc")] == sorted(order, reverse=True)
    assert [v.title for v in listed("added_at", "asc")] == order
    assert [v.title for v in listed("added_at", "desc")] == order[::-1]
    created = listed("created_at", "asc")
    assert [v.created_at for v in created] == sorted(v.created_at for v in created), created
    assert [v.video_id for v in listed("created_at", "desc")] == [v.video_id for v in created][::-1]
    assert [v.video_id for v in everything["videos"]] == [v.video_id for v in created][::-1], "default: newest first"
    for bad in (
        {"sort_by": "duration"},
        {"sort_order": "up"},
        {"page": 0},
        {"page_size": 0},
        {"page_size": 101},
    ):
        assert_error(http.get(f"/collections/{cid}/videos", params=bad), {400})
    assert_error(http.get("/collections/col_never_made/videos"), {404})

    r = http.delete(f"/collections/{cid}/videos/{media['flower']}")
    assert r.status_code == 200 and r.json()["video_count"] == 5, r.text
    assert_error(http.delete(f"/collections/{cid}/videos/{media['flower']}"), {404})
    assert media["flower"] not in {v.video_id for v in members(http, cid, page_size=100)["videos"]}
    assert vv.videos.retrieve(media["flower"]).status == "processed", "removing a member keeps the media"

    # Deleting the media drops its membership.
    deletion = vv.videos.delete(bikes_id)
    poll(lambda: vv.videos.get_deletion(bikes_id), lambda d: d.status == "deleted", 60, interval=0.2)
    assert deletion.video_id == bikes_id
    assert http.get(f"/collections/{cid}").json()["video_count"] == 4
    assert bikes_id not in {v.video_id for v in members(http, cid, page_size=100)["videos"]}

    r = http.delete(f"/collections/{cid}")
    assert r.status_code == 200 and r.json()["success"] is True, r.text
    for t in ("rocket", "chelsea", "coffee", "china"):
        assert vv.videos.retrieve(media[t]).status == "processed", f"{t} went with the collection"
    assert {v.video_id for v in vv.indexes.list_videos(index_a.index_id, limit=100).auto_paging_iter()} == {
        media[t] for t in IN_A
    }


def test_collection_search_sees_only_its_members_across_indexes(
    http: httpx.Client, vv: VideoVector, media: dict[str, str], index_a: videovector.Index
) -> None:
    """POST /collections/{id}/search answers {results, total} of SearchResults from the members
    only, from both indexes and the playground; top_k bounds it; an index search of the same
    query does find the media left out. Unknown collection 404; top_k 0 is 400."""
    c = collection(http, unique("searchable"))
    cid = c["collection_id"]
    inside = {media[t] for t in ("rocket", "chelsea", "coffee")}  # A, B, playground
    for video_id in inside:
        add_member(http, cid, video_id)
    query = "a rocket launch into the sky"

    r = http.post(f"/collections/{cid}/search", json={"query": query, "top_k": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"results", "total"} and body["total"] == len(body["results"]), body
    hits = [videovector.SearchResult.model_validate(h) for h in body["results"]]
    assert {h.video_id for h in hits} == inside, "every member (and nothing else) is found"
    scores = [h.similarity_score if h.similarity_score is not None else h.fused_score for h in hits]
    assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True), scores

    one = http.post(f"/collections/{cid}/search", json={"query": query, "top_k": 1}).json()
    assert one["total"] == 1 and one["results"][0]["video_id"] == hits[0].video_id, one
    outside = {h.video_id for h in vv.search.text(index_a.index_id, query=query, top_k=50)}
    assert {media["flower"], media["china"]} <= outside, "the index search finds the media the collection leaves out"
    assert_error(http.post("/collections/col_never_made/search", json={"query": query, "top_k": 5}), {404})
    assert_error(http.post(f"/collections/{cid}/search", json={"query": query, "top_k": 0}), {400, 422})
    assert http.delete(f"/collections/{cid}").status_code == 200


# --------------------------------------------------------------------------------------------
# Automations
# --------------------------------------------------------------------------------------------


def test_import_automation_contract_and_debounce(
    org: Organize, http: httpx.Client, vv: VideoVector, prompt: videovector.Prompt
) -> None:
    """GET, pause and resume before any PUT are 404; a debounce other than 5m/10m/1h/1d is 400,
    an unknown prompt or connector 404, an export-only connector 400 (nothing saved). A full PUT
    is echoed field by field by PUT and GET; with a new picture in the watched folder and a 5m
    debounce, nothing is imported within a few seconds though the folder was listed; pause and
    resume flip `paused` only; a second PUT replaces the configuration."""
    index = vv.indexes.create(name=unique("organize auto import"))
    base = f"/indexes/{index.index_id}/automations/import"
    watched = org.local_root / "watched"
    importer = create_local_connector(org.server, unique("watched"), watched, scopes=["import"])
    export_only = create_local_connector(org.server, unique("outbox only"), org.local_root / "outbox", ["export"])

    assert_error(http.get(base), {404})
    assert_error(http.post(f"{base}/pause"), {404})
    assert_error(http.post(f"{base}/resume"), {404})
    assert_error(http.get("/indexes/idx_never_made/automations/import"), {404})
    config = {
        "enabled": True,
        "paused": False,
        "connector_id": importer["connector_id"],
        "source_prefix": "incoming",
        "file_pattern": "*.jpg",
        "recursive": False,
        "debounce_interval": "5m",
        "prompt_preset": {"prompt_id": prompt.prompt_id},
    }
    for interval in ("7m", "300s", "5", "", "1w"):
        assert_error(http.put(base, json={**config, "debounce_interval": interval}), {400})
    assert_error(http.put(base, json={**config, "prompt_preset": {"prompt_id": "prompt_never_made"}}), {404})
    assert_error(http.put(base, json={**config, "connector_id": "conn_never_made"}), {404})
    assert_error(http.put(base, json={**config, "connector_id": export_only["connector_id"]}), {400})
    assert_error(http.put("/indexes/idx_never_made/automations/import", json=config), {404})
    assert_error(http.get(base), {404})  # a refused PUT saved nothing

    shutil.copyfile(MEDIA / "rocket.jpg", watched / "incoming" / "rocket.jpg")
    put = http.put(base, json=config)
    assert put.status_code in {200, 201}, put.text
    saved_at = time.monotonic()

    def same(reply: dict[str, Any], **changed: Any) -> None:
        want = {**config, **changed}
        assert {k: reply.get(k) for k in want} == want, reply

    same(put.json())
    same(http.get(base).json())

    # The driver lists the folder (it sees the picture: the connector browses it) but holds the
    # import back for the debounce interval.
    listed = vv.connectors.browse(importer["connector_id"], prefix="incoming")
    assert [f.path for f in listed] == ["incoming/rocket.jpg"], listed
    checked = poll(lambda: http.get(base).json(), lambda a: a.get("last_checked_at"), timeout=10, interval=0.2)
    assert checked.get("last_error") is None, checked
    time.sleep(1.0)
    shutil.copyfile(MEDIA / "flower.jpg", watched / "incoming" / "flower.jpg")  # a change while pending
    time.sleep(max(0.0, DEBOUNCE_WATCH_S - (time.monotonic() - saved_at)))
    now = http.get(base).json()
    assert now.get("last_import_id") is None and now.get("last_error") is None, now
    jobs = [j for j in vv.import_jobs.list() if j.connector_id == importer["connector_id"]]
    assert jobs == [], f"imported before the 5m debounce ended: {jobs}"
    assert list(vv.indexes.list_videos(index.index_id).auto_paging_iter()) == []

    paused = http.post(f"{base}/pause")
    assert paused.status_code == 200, paused.text
    same(paused.json(), paused=True)
    same(http.get(base).json(), paused=True)
    resumed = http.post(f"{base}/resume")
    assert resumed.status_code == 200, resumed.text
    same(resumed.json())
    same(http.get(base).json())

    replaced = {**config, "debounce_interval": "1d", "file_pattern": "*.{jpg,png}", "prompt_preset": None}
    r = http.put(base, json={**replaced, "recursive": True, "source_prefix": "", "enabled": False})
    assert r.status_code in {200, 201}, r.text
    want = {**replaced, "recursive": True, "source_prefix": "", "enabled": False}
    assert {k: r.json().get(k) for k in want} == want, r.json()
    assert {k: http.get(base).json().get(k) for k in want} == want
    assert [j for j in vv.import_jobs.list() if j.connector_id == importer["connector_id"]] == []


def test_export_automation_contract(org: Organize, http: httpx.Client, vv: VideoVector) -> None:
    """GET and pause before any PUT are 404; a destination without the export scope is 400, an
    unknown one 404; a PUT is echoed by PUT and GET; pause and resume flip `paused` only."""
    index = vv.indexes.create(name=unique("organize auto export"))
    base = f"/indexes/{index.index_id}/automations/export"
    outbox = create_local_connector(org.server, unique("outbox"), org.local_root / "outbox", ["import", "export"])
    import_only = create_local_connector(org.server, unique("import only"), org.local_root / "outbox", ["import"])

    assert_error(http.get(base), {404})
    assert_error(http.post(f"{base}/pause"), {404})
    assert_error(http.post(f"{base}/resume"), {404})
    config = {
        "enabled": True,
        "paused": False,
        "destination_connector_id": outbox["connector_id"],
        "destination_subpath": "runs/daily",
    }
    assert_error(http.put(base, json={**config, "destination_connector_id": import_only["connector_id"]}), {400})
    assert_error(http.put(base, json={**config, "destination_connector_id": "conn_never_made"}), {404})
    assert_error(http.put("/indexes/idx_never_made/automations/export", json=config), {404})
    assert_error(http.get(base), {404})

    def same(reply: httpx.Response, **changed: Any) -> None:
        assert reply.status_code in {200, 201}, reply.text
        want = {**config, **changed}
        assert {k: reply.json().get(k) for k in want} == want, reply.json()

    same(http.put(base, json=config))
    same(http.get(base))
    same(http.post(f"{base}/pause"), paused=True)
    same(http.get(base), paused=True)
    same(http.post(f"{base}/resume"))
    same(http.get(base))
    assert_error(http.get(f"/indexes/{index.index_id}/automations/import"), {404})  # an export is not an import
    config = {**config, "paused": True, "destination_subpath": None}
    same(http.put(base, json=config))
    same(http.get(base))


def test_export_automation_refuses_the_subpath_an_export_refuses(
    org: Organize, http: httpx.Client, vv: VideoVector
) -> None:
    """A destination_subpath with `..` segments is 400 for an export; the automation that would
    start such exports must refuse it the same way, and keep the configuration it had."""
    index = vv.indexes.create(name=unique("organize climbing export"))
    outbox = create_local_connector(org.server, unique("outbox"), org.local_root / "outbox", ["export"])
    body = {"destination_connector_id": outbox["connector_id"], "destination_subpath": "../../etc"}
    assert_error(http.post(f"/exports/index/{index.index_id}", json=body), {400})
    base = f"/indexes/{index.index_id}/automations/export"
    r = http.put(base, json=body)
    assert r.status_code == 400, f"saved: {r.status_code} {r.text[:300]}"


# --------------------------------------------------------------------------------------------
# Markers on runs and results, and every SDK read that carries them
# --------------------------------------------------------------------------------------------


@dataclass
class RunMarks:
    prompt_place: dict[str, Any]  # prompt, field "place"
    run_own: dict[str, Any]  # the run itself
    run_people: dict[str, Any]  # the run, field "people"
    result_own: dict[str, Any]  # the segment result itself
    result_place: dict[str, Any]  # the segment result, field "place"
    video_result_own: dict[str, Any]  # the video result itself
    segment_id: str


@pytest.fixture(scope="module")
def run_marks(
    http: httpx.Client, vv: VideoVector, run: videovector.PromptRun, media: dict[str, str]
) -> RunMarks:
    rocket = media["rocket"]
    segment_id = vv.prompt_runs.list_results(run.run_id, video_id=rocket).data[0].segment_id
    result_id = f"{run.run_id}/{segment_id}"
    return RunMarks(
        prompt_place=marker(
            http, target_type="prompt", target_id=run.prompt_id, field_path="place", color="yellow", note="sky?"
        ),
        run_own=marker(http, target_type="prompt_run", target_id=run.run_id, color="purple", note="baseline run"),
        run_people=marker(http, target_type="prompt_run", target_id=run.run_id, field_path="people", note="recount"),
        result_own=marker(http, target_type="segment_result", target_id=result_id, color="orange"),
        result_place=marker(
            http, target_type="segment_result", target_id=result_id, field_path="place", color="red", note="wrong"
        ),
        video_result_own=marker(
            http, target_type="video_result", target_id=f"{run.run_id}/{rocket}", color="teal", note="busy indeed"
        ),
        segment_id=segment_id,
    )


def test_run_and_result_markers_surface_where_the_sdk_reads_them(
    http: httpx.Client, vv: VideoVector, run: videovector.PromptRun, run_marks: RunMarks, media: dict[str, str]
) -> None:
    """prompt_runs.retrieve: `marker` (the run's own); its JSON's metadata_markers holds the field
    markers of the prompt and of the run (the SDK's PromptRun has no such field). list_results:
    `marker` (the result's own), `extracted_metadata_markers` (the result's field markers),
    `metadata_markers` (the prompt's and run's). get_video_result: `marker`. A marker on a result
    is not the segment's or the video's; replacing the prompt's marker shows at once."""
    m = run_marks
    rocket = media["rocket"]
    assert vv.prompt_runs.retrieve(run.run_id).marker == info(m.run_own)
    raw = http.get(f"/prompt-runs/{run.run_id}").json()
    assert raw.get("metadata_markers") == {
        "place": info(m.prompt_place).model_dump(),
        "people": info(m.run_people).model_dump(),
    }, raw.get("metadata_markers")

    result = vv.prompt_runs.list_results(run.run_id, video_id=rocket).data[0]
    assert result.marker == info(m.result_own), result
    assert result.extracted_metadata_markers == {"place": info(m.result_place)}, result.extracted_metadata_markers
    assert result.metadata_markers == {"place": info(m.prompt_place), "people": info(m.run_people)}, result
    assert vv.prompt_runs.get_video_result(run.run_id, rocket).marker == info(m.video_result_own)

    segment = next(s for s in vv.videos.list_segments(rocket).data if s.segment_id == m.segment_id)
    assert segment.marker == MarkerInfo(), "a result's marker is not its segment's"
    assert vv.videos.retrieve(rocket).marker == MarkerInfo(), "a result's marker is not its video's"

    replaced = marker(
        http, target_type="prompt", target_id=run.prompt_id, field_path="place", color="white", note="fine after all"
    )
    assert replaced["marker_id"] == m.prompt_place["marker_id"]
    again = vv.prompt_runs.list_results(run.run_id, video_id=rocket).data[0]
    assert again.metadata_markers["place"] == info(replaced), again.metadata_markers
    assert markers_of(http, target_type="prompt", target_id=run.prompt_id) == [replaced]
    listed = markers_of(http, target_type="segment_result", target_id=f"{run.run_id}/{m.segment_id}")
    assert {x["marker_id"] for x in listed} == {m.result_own["marker_id"], m.result_place["marker_id"]}


@pytest.fixture(scope="module")
def video_marks(http: httpx.Client, media: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Markers on rocket (index A) and coffee (the playground) themselves."""
    return {
        "rocket": marker(http, target_type="video", target_id=media["rocket"], color="red", note="launch"),
        "coffee": marker(http, target_type="video", target_id=media["coffee"], note="morning"),
    }



def _read_in_collection(http: httpx.Client, video_id: str) -> videovector.Video:
    c = collection(http, unique("marked"))
    try:
        add_member(http, c["collection_id"], video_id)
        return members(http, c["collection_id"])["videos"][0]
    finally:
        http.delete(f"/collections/{c['collection_id']}")


VIDEO_READS: dict[str, Callable[[VideoVector, httpx.Client, dict[str, str], str], Any]] = {
    "videos.retrieve": lambda vv, http, ids, t: vv.videos.retrieve(ids[t]),
    "indexes.list_videos": lambda vv, http, ids, t: next(
        v for v in vv.indexes.list_videos(ids["index_a"], limit=100).auto_paging_iter() if v.video_id == ids[t]
    ),
    "videos.list_playground": lambda vv, http, ids, t: next(
        v for v in vv.videos.list_playground(limit=100).auto_paging_iter() if v.video_id == ids[t]
    ),
    "videos.batch_retrieve": lambda vv, http, ids, t: vv.videos.batch_retrieve([ids[t]])[0],
    "GET /collections/{id}/videos": lambda vv, http, ids, t: _read_in_collection(http, ids[t]),
}


@pytest.mark.parametrize(
    ("read", "title"),
    [
        pytest.param("videos.retrieve", "rocket"),
        pytest.param("videos.retrieve", "coffee"),
        pytest.param("videos.list_playground", "coffee"),
        pytest.param("indexes.list_videos", "rocket"),
        pytest.param("videos.batch_retrieve", "rocket"),
        pytest.param("GET /collections/{id}/videos", "rocket"),
    ],
)
def test_every_read_of_a_video_carries_its_marker(
    read: str,
    title: str,
    http: httpx.Client,
    vv: VideoVector,
    media: dict[str, str],
    index_a: videovector.Index,
    video_marks: dict[str, dict[str, Any]],
) -> None:
    """The Video the SDK reads has `marker` = the video's own marker, whichever route answers it."""
    video = VIDEO_READS[read](vv, http, {**media, "index_a": index_a.index_id}, title)
    assert video.marker == info(video_marks[title]), f"{read}: {video.marker!r}"


SEGMENT_READS: dict[str, Callable[[VideoVector, str, str], list[videovector.Segment]]] = {
    "videos.list_segments": lambda vv, video_id, run_id: vv.videos.list_segments(video_id).data,
    "videos.list_segments(run_id)": lambda vv, video_id, run_id: vv.videos.list_segments(video_id, run_id=run_id).data,
    "videos.batch_segments": lambda vv, video_id, run_id: vv.videos.batch_segments([video_id])[0].segments,
}


@pytest.mark.parametrize(
    "read",
    [
        "videos.list_segments",
        "videos.list_segments(run_id)",
        pytest.param(
            "videos.batch_segments"
        ),
    ],
)
def test_every_read_of_a_segment_carries_its_marker(
    read: str,
    http: httpx.Client,
    vv: VideoVector,
    run: videovector.PromptRun,
    run_marks: RunMarks,
    media: dict[str, str],
) -> None:
    """The Segment the SDK reads has `marker` = the segment's own marker, whichever route answers it."""
    own = marker(http, target_type="segment", target_id=run_marks.segment_id, color="pink", note="keyframe")
    segments = SEGMENT_READS[read](vv, media["rocket"], run.run_id)
    segment = next(s for s in segments if s.segment_id == run_marks.segment_id)
    assert segment.marker == info(own), f"{read}: {segment.marker!r}"


RUN_READS: dict[str, Callable[[VideoVector, str, str, str], list[videovector.PromptRun]]] = {
    "prompt_runs.retrieve": lambda vv, run_id, video_id, index_id: [vv.prompt_runs.retrieve(run_id)],
    "prompt_runs.list": lambda vv, run_id, video_id, index_id: vv.prompt_runs.list(),
    "videos.list_prompt_runs": lambda vv, run_id, video_id, index_id: vv.videos.list_prompt_runs(video_id),
    "indexes.list_prompt_runs": lambda vv, run_id, video_id, index_id: list(
        vv.indexes.list_prompt_runs(index_id, limit=100).auto_paging_iter()
    ),
}


@pytest.mark.parametrize(
    "read",
    [
        "prompt_runs.retrieve",
        "prompt_runs.list",
        pytest.param(
            "videos.list_prompt_runs"
        ),
        pytest.param(
            "indexes.list_prompt_runs"
        ),
    ],
)
def test_every_read_of_a_run_carries_its_marker(
    read: str,
    vv: VideoVector,
    run: videovector.PromptRun,
    run_marks: RunMarks,
    media: dict[str, str],
    index_a: videovector.Index,
) -> None:
    """The PromptRun the SDK reads has `marker` = the run's own marker, whichever route answers it."""
    runs = RUN_READS[read](vv, run.run_id, media["rocket"], index_a.index_id)
    found = next(r for r in runs if r.run_id == run.run_id)
    assert found.marker == info(run_marks.run_own), f"{read}: {found.marker!r}"
