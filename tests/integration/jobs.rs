//! The engine as a foundation for concurrent, long-running work: one engine shared by threads,
//! ingests as jobs that can be cancelled and survive a kill -9, a second process on the same
//! folder, the event log, and regression tests for the defects found in review (each named
//! after its defect).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use videovector::{
    Engine, EngineOptions, ErrorKind, EventType, IngestOptions, JobStatus, ModelChoice, PageRequest, SegmentKind,
    Space, Status, TextSearch, VideoSegmentation,
};

use crate::common::{fixture, segments_of};

fn options() -> EngineOptions {
    EngineOptions::new().shot_model(ModelChoice::Off).visual_model(ModelChoice::Off).asr_model(ModelChoice::Off)
}

fn cli(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_videovector"));
    cmd.arg("--data-dir").arg(data).args(["--visual-model", "off"]);
    cmd
}

/// Texts for the transcript space, one per segment of a media item: "<word> number <i>".
fn add_texts(engine: &Engine, video_id: &str, word: &str) {
    for (i, s) in segments_of(engine, video_id, SegmentKind::Video).iter().enumerate() {
        engine
            .embeddings()
            .add_segment_text(&s.segment_id, Space::Transcript, &format!("{word} scene number {i}"))
            .unwrap();
    }
}

/// Wait (polling the store, as another process would) until `f` holds.
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Several threads search while two ingests add vectors and a delete removes some: no error,
/// every answer consistent. Also the regression test for concurrent ANN add and search (usearch
/// must not `reserve` while another thread searches the same index).
#[test]
fn regression_concurrent_ann_add_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(dir.path().join("data"), options()).unwrap();
    engine.indexes().create("shared", None).unwrap();
    let opts = IngestOptions::new().index("shared");
    let keep = engine.videos().ingest(fixture("slideshow.mp4"), &opts).unwrap().video_id.unwrap();
    let doomed = engine.videos().ingest(fixture("cuts.mp4"), &opts).unwrap().video_id.unwrap();
    add_texts(&engine, &keep, "lighthouse");
    add_texts(&engine, &doomed, "volcano");

    let deleted = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let searchers: Vec<_> = (0..3)
            .map(|_| {
                let (engine, deleted, stop, doomed) = (engine.clone(), &deleted, &stop, &doomed);
                s.spawn(move || {
                    let mut answered = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let was_deleted = deleted.load(Ordering::SeqCst);
                        let r =
                            engine.search().text(Some("shared"), &TextSearch::new("volcano scene").top_k(5)).unwrap();
                        assert!(!r.results.is_empty(), "the kept media always answers");
                        assert!(r.results.windows(2).all(|w| w[0].score >= w[1].score), "ranked by score");
                        if was_deleted {
                            assert!(
                                r.results.iter().all(|h| &h.video_id != doomed),
                                "a deleted video never comes back"
                            );
                        }
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        let ingests: Vec<_> = ["bikes.mp4", "fade.mp4"]
            .into_iter()
            .map(|name| {
                let (engine, opts) = (engine.clone(), opts.clone());
                s.spawn(move || engine.videos().ingest(fixture(name), &opts).unwrap())
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        engine.videos().delete(&doomed).unwrap();
        deleted.store(true, Ordering::SeqCst);
        for i in ingests {
            assert_eq!(i.join().unwrap().status, Status::Completed);
        }
        stop.store(true, Ordering::SeqCst);
        for s in searchers {
            assert!(s.join().unwrap() > 0, "every searcher got answers");
        }
    });
    let r = engine.search().text(Some("shared"), &TextSearch::new("lighthouse scene number 2").top_k(1)).unwrap();
    assert_eq!(r.results[0].video_id, keep);
    assert_eq!(engine.indexes().retrieve("shared").unwrap().video_count, 3);
    engine.check().unwrap();
}

#[test]
fn regression_cli_ingest_is_invisible_to_a_running_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = Engine::open_with(&data, options().workers(0)).unwrap();
    let setup = Engine::open_with(&data, options()).unwrap();
    let slideshow = setup.videos().ingest(fixture("slideshow.mp4"), &IngestOptions::new()).unwrap().video_id.unwrap();
    add_texts(&setup, &slideshow, "slide");
    drop(setup);
    // This process has the playground's transcript index loaded and cached.
    let before = engine.search().text(None, &TextSearch::new("a lighthouse on a rocky coast").top_k(1)).unwrap();
    assert_eq!(before.results[0].video_id, slideshow);

    // Another process transcribes speech into the same folder.
    let out = cli(&data).args(["ingest", "--transcribe"]).arg(fixture("speech.wav")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let after = engine.search().text(None, &TextSearch::new("a lighthouse on a rocky coast").top_k(1)).unwrap();
    let hit = &after.results[0];
    assert_ne!(hit.video_id, slideshow, "the next search sees the other process's vectors");
    assert!(hit.snippet.as_deref().unwrap_or_default().to_lowercase().contains("rocky coast"), "{hit:?}");
}

#[test]
fn regression_deleting_a_video_does_not_rebuild_the_scope_ann() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(dir.path().join("data"), options()).unwrap();
    let a = engine.videos().ingest(fixture("slideshow.mp4"), &IngestOptions::new()).unwrap().video_id.unwrap();
    let b = engine.videos().ingest(fixture("cuts.mp4"), &IngestOptions::new()).unwrap().video_id.unwrap();
    add_texts(&engine, &a, "harbour");
    add_texts(&engine, &b, "desert");
    let q = TextSearch::new("desert scene").top_k(3);
    assert_eq!(engine.search().text(None, &q).unwrap().results[0].video_id, b);
    let builds = videovector::internals::ann_full_builds();
    engine.videos().delete(&b).unwrap();
    let r = engine.search().text(None, &q).unwrap();
    assert!(r.results.iter().all(|h| h.video_id == a), "only the remaining video answers");
    assert_eq!(videovector::internals::ann_full_builds(), builds, "the delete removed keys, nothing was rebuilt");
}

#[test]
fn regression_resume_ignores_the_original_options() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = cli(&data)
        .args(["--asr-model", "off", "ingest", "--segmentation", "fixed", "--segment-duration", "5"])
        .arg(fixture("long_1min.mp4"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let watcher = Engine::open_with(&data, options().workers(0)).unwrap();
    wait_until("the ingest job to run", Duration::from_secs(120), || {
        watcher.jobs().list(Some(JobStatus::Processing), &PageRequest::default()).is_ok_and(|p| !p.data.is_empty())
    });
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL, mid-job
    child.wait().unwrap();
    let job = watcher.jobs().list(None, &PageRequest::default()).unwrap().data.remove(0);
    assert_eq!(job.status, JobStatus::Processing, "the kill left the job running, with a dead owner");
    drop(watcher);

    // Opening the folder with workers picks the job up again, with its own options.
    let engine = Engine::open_with(&data, options()).unwrap();
    let done = engine.jobs().wait(&job.job_id, Some(Duration::from_secs(180))).unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Completed, 2), "{done:?}");
    assert_eq!(done.progress.stage, videovector::JobStage::Done, "a completed job shows its last stage");
    let video_id = done.video_id.unwrap();
    let segments = segments_of(&engine, &video_id, SegmentKind::Video);
    assert_eq!(segments.len(), 12, "fixed 5 s segments, as the killed command asked");
    assert!(segments.iter().all(|s| s.segmentation_type == "fixed"));
    crate::common::assert_tiles(&segments, 60.0, "long_1min.mp4 after the job was picked up again");
    let on_disk = std::fs::read_dir(data.join("thumbnails").join(video_id.as_str())).unwrap().count();
    assert_eq!(on_disk, 12, "no stray thumbnails from the killed attempt");
    assert_eq!(engine.videos().list(&PageRequest::default()).unwrap().data.len(), 1, "no duplicate media");
}

#[test]
fn cancelling_a_running_ingest_stops_it_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(dir.path().join("data"), options()).unwrap();
    let sub = engine.videos().submit(&[fixture("long_1min.mp4")], &IngestOptions::new()).unwrap().remove(0);
    let job_id = sub.job_id.unwrap();
    wait_until("the job to run", Duration::from_secs(60), || {
        engine.jobs().get(&job_id).unwrap().status == JobStatus::Processing
    });
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    engine.jobs().cancel(&job_id).unwrap();
    let job = engine.jobs().wait(&job_id, Some(Duration::from_secs(10))).unwrap();
    let took = asked.elapsed();
    assert_eq!(job.status, JobStatus::Cancelled);
    // The requirement is one second; the bound leaves room for a loaded 2-core test machine.
    assert!(took < Duration::from_secs(3), "cancel took {took:?}");
    let media = engine.videos().retrieve(&sub.video_id.unwrap()).unwrap();
    assert_eq!(media.status, Status::Failed);
    assert!(media.error.unwrap().contains("cancelled"));
    assert!(segments_of(&engine, &media.video_id, SegmentKind::Video).is_empty(), "no half-made segments");
    assert!(!dir.path().join("data/thumbnails").join(media.video_id.as_str()).exists(), "no thumbnails left");
    // Ingesting the file again retries it.
    let again = engine.videos().ingest(fixture("long_1min.mp4"), &IngestOptions::new()).unwrap();
    assert_eq!((again.video_id.as_ref(), again.status), (Some(&media.video_id), Status::Completed));
}

#[test]
fn every_state_change_is_an_event_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(dir.path().join("data"), options()).unwrap();
    let ok = engine.videos().ingest(fixture("bikes.mp4"), &IngestOptions::new()).unwrap();
    let bad = engine.videos().ingest(fixture("corrupt.mp4"), &IngestOptions::new()).unwrap();
    assert_eq!(bad.status, Status::Failed);
    let events = engine.events().since(0, 1000).unwrap();
    assert!(events.windows(2).all(|w| w[0].event_id < w[1].event_id));
    let of = |id: &videovector::VideoId| -> Vec<EventType> {
        events.iter().filter(|e| e.video_id.as_ref() == Some(id)).map(|e| e.event_type).collect()
    };
    assert_eq!(
        of(ok.video_id.as_ref().unwrap()),
        vec![
            EventType::MediaCreated,
            EventType::JobCreated,
            EventType::JobStarted,
            EventType::MediaProcessingStarted,
            EventType::MediaProcessingCompleted,
            EventType::JobCompleted
        ]
    );
    let failed = of(bad.video_id.as_ref().unwrap());
    assert!(
        failed.contains(&EventType::MediaProcessingFailed) && failed.ends_with(&[EventType::JobFailed]),
        "{failed:?}"
    );
    let failure = events.iter().find(|e| e.event_type == EventType::MediaProcessingFailed).unwrap();
    assert!(failure.payload["error"].as_str().unwrap().contains("corrupt.mp4"), "{:?}", failure.payload);
    let last = events.last().unwrap().event_id;
    assert!(engine.events().since(last, 10).unwrap().is_empty());
    assert_eq!(engine.events().since(0, 0).unwrap_err().kind(), ErrorKind::BadRequest);
    // The CLI reads the same log.
    let out =
        cli(dir.path().join("data").as_path()).args(["events", "--since", &(last - 1).to_string()]).output().unwrap();
    assert!(out.status.success());
    let line: serde_json::Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["event_id"], last);
}

#[test]
fn regression_a_bad_thumbnail_does_not_stop_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let clip = dir.path().join("clip");
    std::fs::create_dir(&clip).unwrap();
    crate::clip_golden::write_tiny_clip(&clip);
    // Keyframes made without a visual model wait for one; one of them is then damaged.
    let first = Engine::open_with(&data, options()).unwrap();
    let slideshow = first.videos().ingest(fixture("slideshow.mp4"), &IngestOptions::new()).unwrap();
    drop(first);
    let damaged = slideshow.segments[1].thumbnail_path.clone().unwrap();
    std::fs::write(&damaged, b"not a jpeg").unwrap();

    let engine =
        Engine::open_with(&data, options().visual_model(ModelChoice::Use(clip.display().to_string()))).unwrap();
    let results = engine
        .videos()
        .ingest_many(&[fixture("bikes.mp4"), fixture("fade.mp4")], &IngestOptions::new(), &mut |_| {})
        .unwrap();
    assert!(results.iter().all(|r| r.status == Status::Completed), "{results:?}");
    let warned: Vec<&String> = results.iter().flat_map(|r| &r.warnings).collect();
    assert!(warned.iter().any(|w| w.contains(&damaged)), "the damaged thumbnail is named: {warned:?}");
    let stored = engine.embeddings().video(slideshow.video_id.as_ref().unwrap()).unwrap().data.len();
    assert_eq!(stored, slideshow.segments.len() - 1, "every other keyframe was embedded");
    for r in &results {
        let n = engine.embeddings().video(r.video_id.as_ref().unwrap()).unwrap().data.len();
        assert_eq!(n, r.segments.len(), "{}", r.source_path);
    }
}

#[test]
fn regression_a_model_file_without_a_tensor_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("broken-minilm");
    std::fs::create_dir(&model).unwrap();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(real.join(f), model.join(f)).unwrap();
    }
    // A valid safetensors file that holds no tensor at all.
    let header = b"{}";
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(model.join("model.safetensors"), bytes).unwrap();
    let out = cli(&dir.path().join("data"))
        .env("RUST_BACKTRACE", "1")
        .arg("--text-model")
        .arg(&model)
        .args(["embeddings", "text", "hello", "--space", "transcript"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line, no backtrace: {stderr}");
    assert!(stderr.contains("model.safetensors has no tensor"), "{stderr}");
    assert!(stderr.contains("embeddings.word_embeddings.weight"), "names the tensor: {stderr}");
}

#[test]
fn jobs_are_listed_and_waited_for_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = cli(&data).args(["--asr-model", "off", "ingest"]).arg(fixture("fade.mp4")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&data).args(["jobs", "list", "--json"]).output().unwrap();
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = &page["data"][0];
    assert_eq!((job["status"].as_str(), job["kind"].as_str()), (Some("completed"), Some("ingest")));
    assert_eq!(job["request"]["options"]["segmentation"]["video_segmentation_type"], "smart");
    let id = job["job_id"].as_str().unwrap();
    let waited = cli(&data).args(["jobs", "wait", id, "--json"]).output().unwrap();
    assert!(waited.status.success());
    let missing = cli(&data).args(["jobs", "get", "job_nope"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("job not found: job_nope"));
}

#[test]
fn the_segmentation_asked_for_is_kept_with_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(dir.path().join("data"), options().workers(0)).unwrap();
    let mut opts = IngestOptions::new();
    opts.segmentation.video_segmentation_type = VideoSegmentation::Fixed;
    opts.segmentation.video_segment_duration = Some(2.0);
    let sub = engine.videos().submit(&[fixture("bikes.mp4")], &opts).unwrap().remove(0);
    let job = engine.jobs().get(sub.job_id.as_ref().unwrap()).unwrap();
    assert_eq!(job.status, JobStatus::Pending, "no workers here: it waits");
    assert_eq!(job.request["options"]["segmentation"]["video_segment_duration"], 2.0);
    // A waiting caller on a worker-less engine is told why rather than left waiting forever.
    let err = engine.videos().ingest(fixture("bikes.mp4"), &opts).unwrap_err();
    assert!(err.to_string().contains("no workers"), "{err}");
    // An engine with a worker runs it.
    drop(engine);
    let engine = Engine::open_with(dir.path().join("data"), options()).unwrap();
    let done = engine.jobs().wait(sub.job_id.as_ref().unwrap(), Some(Duration::from_secs(60))).unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    let segments = segments_of(&engine, sub.video_id.as_ref().unwrap(), SegmentKind::Video);
    assert!(segments.iter().all(|s| s.segmentation_type == "fixed" && s.end - s.start <= 2.0 + 0.05));
}
