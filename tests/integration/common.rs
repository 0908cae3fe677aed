//! Fixture paths, ground truth and helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use videovector::{Engine, EngineOptions, ModelChoice, PageRequest, Segment};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Path of a fixture file; fails the test with the command that makes it when it is missing.
pub fn fixture(name: &str) -> PathBuf {
    let path = fixtures_dir().join("media").join(name);
    assert!(path.exists(), "fixture {} is missing: run `bash fixtures/make.sh` first", path.display());
    path
}

/// The `files` object of `fixtures/ground_truth.json`.
pub fn truth() -> &'static Value {
    static TRUTH: OnceLock<Value> = OnceLock::new();
    TRUTH.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures_dir().join("ground_truth.json")).expect("ground_truth.json");
        let all: Value = serde_json::from_str(&text).expect("ground_truth.json parses");
        all["files"].clone()
    })
}

pub fn truth_of(name: &str) -> &'static Value {
    let v = &truth()[name];
    assert!(!v.is_null(), "no ground truth for {name}");
    v
}

/// The text of each utterance of a file, in order, from ground truth.
pub fn spoken_texts(name: &str) -> Vec<String> {
    let utterances = truth_of(name)["speech"].as_array().expect("ground truth lists the speech");
    utterances.iter().map(|u| u["text"].as_str().expect("an utterance has its text").to_string()).collect()
}

pub fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

/// An engine on a fresh data folder without models: ingest and segmentation only (the model
/// tests open engines of their own).
pub fn temp_engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options =
        EngineOptions::new().shot_model(ModelChoice::Off).visual_model(ModelChoice::Off).asr_model(ModelChoice::Off);
    let engine = Engine::open_with(dir.path().join("data"), options).expect("engine opens");
    (dir, engine)
}

/// The segment invariant: spans tile `[0, duration]` in order, no gaps or overlaps, none empty.
pub fn assert_tiles(segments: &[Segment], duration: f64, what: &str) {
    assert!(!segments.is_empty(), "{what}: no segments");
    assert_eq!(segments[0].start_us, 0, "{what}: first segment starts at {}", segments[0].start);
    let last = segments.last().unwrap();
    assert!((last.end - duration).abs() < 1e-6, "{what}: last segment ends at {} not {duration}", last.end);
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s.index as usize, i, "{what}: segment order");
        assert!(s.end_us > s.start_us || duration == 0.0, "{what}: segment {i} is empty: {s:?}");
        if let Some(next) = segments.get(i + 1) {
            assert_eq!(next.start_us, s.end_us, "{what}: gap or overlap after segment {i}");
        }
    }
}

/// How many media items the engine holds (first page, which is plenty for tests).
pub fn media_count(engine: &Engine) -> usize {
    engine.videos().list(&PageRequest::default()).expect("media list").data.len()
}

/// Every segment of a media item of one kind.
pub fn segments_of(engine: &Engine, video_id: &str, kind: videovector::SegmentKind) -> Vec<Segment> {
    let query = videovector::SegmentQuery::new().kind(kind).page(PageRequest::first(videovector::MAX_PAGE_LIMIT));
    engine.videos().list_segments(video_id, &query).expect("segments").data
}
