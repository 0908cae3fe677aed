//! Bad input: every bad file gets a clear error naming it, and nothing already stored changes.

use crate::common::{fixture, media_count, temp_engine};
use videovector::{ErrorKind, IngestOptions, PageRequest, SegmentQuery, Status, VideoSegmentation};

#[test]
fn bad_files_fail_with_their_name_and_leave_the_catalog_intact() {
    let (dir, engine) = temp_engine();
    let good = engine.videos().ingest(fixture("bikes.mp4"), &IngestOptions::default()).unwrap();
    let good_id = good.video_id.clone().unwrap();
    let before = engine.videos().list_segments(&good_id, &SegmentQuery::default()).unwrap();

    let directory_as_file = dir.path().join("folder.mp4");
    std::fs::create_dir(&directory_as_file).unwrap();
    let cases = [
        (fixture("empty.mp4"), "empty"),
        (fixture("notvideo.mp4"), "FFmpeg cannot open it"),
        (fixture("truncated.mp4"), "FFmpeg cannot open it"),
        (fixture("corrupt.mp4"), "FFmpeg cannot open it"),
        (dir.path().join("missing.mp4"), "No such file"),
    ];
    let paths: Vec<_> = cases.iter().map(|(p, _)| p.clone()).chain([fixture("cuts.mp4")]).collect();
    let results = engine.videos().ingest_many(&paths, &IngestOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(results.len(), cases.len() + 1);
    for ((path, expected), r) in cases.iter().zip(&results) {
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(r.status, Status::Failed, "{name}");
        let err = r.error.as_deref().unwrap();
        assert!(err.contains(name.as_ref()), "error does not name the file: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(r.segments.is_empty());
        if let Some(id) = &r.video_id {
            // Recorded as failed, with no files left behind.
            let m = engine.videos().retrieve(id).unwrap();
            assert_eq!(m.status, Status::Failed);
            assert!(!dir.path().join("data/thumbnails").join(id.as_str()).exists());
        }
    }
    assert_eq!(results.last().unwrap().status, Status::Completed, "the batch goes on after bad files");

    engine.check().unwrap();
    let after = engine.videos().list_segments(&good_id, &SegmentQuery::default()).unwrap();
    assert_eq!(before, after, "segments of media ingested earlier are untouched");
    assert!(after.data.iter().all(|s| std::path::Path::new(s.thumbnail_path.as_ref().unwrap()).exists()));
}

#[test]
fn a_damaged_file_is_ingested_with_a_warning() {
    let (_dir, engine) = temp_engine();
    let r = engine.videos().ingest(fixture("corrupt_tail.mp4"), &IngestOptions::default()).unwrap();
    assert_eq!(r.status, Status::Completed);
    let decode: Vec<&String> = r.warnings.iter().filter(|w| w.contains("could not be decoded")).collect();
    assert_eq!(decode.len(), 1, "{:?}", r.warnings);
    assert!(decode[0].contains("corrupt_tail.mp4"), "{}", decode[0]);
    let stored = engine.videos().retrieve(r.video_id.as_deref().unwrap()).unwrap();
    assert_eq!(stored.warnings, vec![decode[0].clone()], "the decode warning is kept with the media");
    crate::common::assert_tiles(&r.segments, r.duration.unwrap(), "corrupt_tail.mp4");
}

#[test]
fn a_failed_file_can_be_retried_under_the_same_id() {
    let (dir, engine) = temp_engine();
    let path = dir.path().join("later.mp4");
    std::fs::write(&path, b"not yet").unwrap();
    let failed = engine.videos().ingest(&path, &IngestOptions::default()).unwrap();
    assert_eq!(failed.status, Status::Failed);
    let again = engine.videos().ingest(&path, &IngestOptions::default()).unwrap();
    assert_eq!((again.status, again.video_id), (Status::Failed, failed.video_id), "same content, same row");
    assert_eq!(media_count(&engine), 1);
}

#[test]
fn malformed_requests_are_errors_that_name_the_field() {
    let (_dir, engine) = temp_engine();
    let bikes = fixture("bikes.mp4");
    let mut o = IngestOptions::default();
    o.segmentation.video_segmentation_type = VideoSegmentation::Fixed;
    let err = engine.videos().ingest(&bikes, &o).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.to_string().contains("video_segment_duration"), "{err}");
    for bad in [0.0, -2.0, f64::NAN, f64::INFINITY] {
        o.segmentation.video_segment_duration = Some(bad);
        let err = engine.videos().ingest(&bikes, &o).unwrap_err();
        assert!(err.to_string().contains("video_segment_duration"), "{bad}: {err}");
    }
    let err = engine.videos().ingest(&bikes, &IngestOptions::new().index("nope")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("nope") && err.to_string().contains("index create"), "{err}");
    assert!(media_count(&engine) == 0, "a bad request stores nothing");

    let err = engine.videos().list_segments("vid_unknown", &SegmentQuery::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("vid_unknown"));
    let err = engine.videos().list(&PageRequest::first(5000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    let err = engine.indexes().create("  ", None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(engine.indexes().delete("idx_unknown").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn a_catalog_from_a_newer_version_is_refused_not_rewritten() {
    let (dir, engine) = temp_engine();
    drop(engine);
    let db = dir.path().join("data/catalog.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = videovector::Engine::open(dir.path().join("data")).expect_err("refused");
    assert!(err.to_string().contains("newer"), "{err}");
}
