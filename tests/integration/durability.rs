//! A kill -9 in the middle of an ingest: the catalog opens, finished media is intact, and the
//! rest resumes under the same ids without duplicates.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::fixture;
use videovector::{Engine, EngineOptions, ModelChoice, PageRequest, SegmentKind, Status};

fn no_models() -> EngineOptions {
    EngineOptions::new().shot_model(ModelChoice::Off).visual_model(ModelChoice::Off).asr_model(ModelChoice::Off)
}

fn status_of(db: &std::path::Path, file: &str) -> Option<String> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row("SELECT status FROM media WHERE source_path LIKE ?1", [format!("%{file}")], |r| r.get(0)).ok()
}

#[test]
fn kill_during_ingest_then_resume_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let files = [fixture("bikes.mp4"), fixture("long_1min.mp4")];
    let ingest = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_videovector"));
        cmd.arg("--data-dir").arg(&data).args(["--asr-model", "off"]).arg("ingest").args(&files).arg("--json");
        cmd
    };
    let mut child = ingest().stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let db = data.join("catalog.sqlite");
    let started = Instant::now();
    while status_of(&db, "long_1min.mp4").as_deref() != Some("processing") {
        assert!(started.elapsed() < Duration::from_secs(120), "the second file never started processing");
        assert!(child.try_wait().unwrap().is_none(), "ingest finished before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // No workers: a worker would requeue the interrupted job (its owner is dead) at once, and
    // the killed state is what is inspected first.
    let engine = Engine::open_with(&data, no_models().workers(0)).expect("the catalog opens after a kill");
    engine.check().unwrap();
    let media = engine.videos().list(&PageRequest::default()).unwrap().data;
    assert_eq!(media.len(), 2);
    let (bikes, long) = (&media[0], &media[1]);
    assert_eq!(bikes.status, Status::Completed, "the file that finished before the kill is kept");
    assert_eq!(long.status, Status::Processing);
    let bikes_segments = crate::common::segments_of(&engine, &bikes.video_id, SegmentKind::Video);
    assert!(!bikes_segments.is_empty());
    assert!(bikes_segments.iter().all(|s| std::path::Path::new(s.thumbnail_path.as_ref().unwrap()).exists()));
    assert!(
        crate::common::segments_of(&engine, &long.video_id, SegmentKind::Video).is_empty(),
        "no half-written segments"
    );

    drop(engine);

    let engine = Engine::open_with(&data, no_models()).unwrap();
    let resumed = engine.videos().resume(&mut |_| {}).unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].video_id.as_ref(), Some(&long.video_id), "resumed under the same id");
    assert_eq!(resumed[0].status, Status::Completed);
    drop(engine);

    // Running the same command again changes nothing.
    let out = ingest().output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let engine = Engine::open_with(&data, no_models()).unwrap();
    let again = engine.videos().list(&PageRequest::default()).unwrap().data;
    assert_eq!(
        again.iter().map(|m| (&m.video_id, m.status)).collect::<Vec<_>>(),
        vec![(&bikes.video_id, Status::Completed), (&long.video_id, Status::Completed)]
    );
    assert_eq!(crate::common::segments_of(&engine, &bikes.video_id, SegmentKind::Video), bikes_segments);
}

#[test]
fn rerunning_an_interrupted_ingest_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_videovector"))
            .arg("--data-dir")
            .arg(&data)
            // The rules cut shots: what is tested is the resume, and TransNetV2 over a minute
            // of video, twice, made this the slowest test of the suite.
            .args(["--asr-model", "off", "--shot-model", "off"])
            .arg("ingest")
            .arg(fixture("long_1min.mp4"))
            .spawn()
            .unwrap()
    };
    let mut child = run();
    let db = data.join("catalog.sqlite");
    let started = Instant::now();
    while status_of(&db, "long_1min.mp4").as_deref() != Some("processing") {
        assert!(started.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(child.try_wait().unwrap().is_none(), "ingest finished before it could be killed");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(run().wait().unwrap().success());
    let engine = Engine::open_with(&data, no_models()).unwrap();
    let media = engine.videos().list(&PageRequest::default()).unwrap().data;
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].status, Status::Completed);
    let segments = crate::common::segments_of(&engine, &media[0].video_id, SegmentKind::Video);
    crate::common::assert_tiles(&segments, 60.0, "long_1min.mp4 after resume");
    let on_disk = std::fs::read_dir(data.join("thumbnails").join(media[0].video_id.as_str())).unwrap().count();
    assert_eq!(on_disk, segments.len(), "no stray thumbnails from the killed run");
}
