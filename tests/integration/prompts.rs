//! Prompts and prompt runs: the schema subset and its errors, prompt CRUD and idempotency, runs
//! end to end with the default language model (results valid for the schema, call log,
//! estimate, cancel, retry, resume), and extraction accuracy on labelled spoken scenes.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use videovector::{
    Engine, EngineOptions, Error, ErrorKind, IngestOptions, ModelChoice, NewPrompt, PageRequest, PromptUpdate,
    RunRequest, RunStatus, RunTarget, VideoSegmentation,
};

use crate::common::{fixture, fixtures_dir, temp_engine};

fn scene_schema() -> Value {
    json!({"type": "object", "properties": {
        "place": {"type": "string", "enum": ["beach", "kitchen", "forest", "office", "street"], "description": "where the scene takes place"},
        "mood": {"type": "string", "enum": ["calm", "tense", "joyful", "sad"], "description": "the feeling of the scene"},
        "objects": {"type": "array", "items": {"type": "string"}, "description": "things mentioned"}}})
}

fn scene_prompt() -> NewPrompt {
    NewPrompt::new("Scene labels", "Say where the scene takes place and its mood, from what is said.", scene_schema())
}

/// Run `prompt` over one media item and wait for the run to end.
fn run_one(engine: &Engine, prompt: &videovector::Prompt, video_id: &str) -> videovector::PromptRun {
    let target = RunTarget::Videos { video_ids: vec![video_id.to_string()], index_id: None };
    let run = engine.prompt_runs().execute(&RunRequest::new(prompt.prompt_id.as_str(), target), None).unwrap();
    engine.prompt_runs().wait(&run.run_id, Some(Duration::from_secs(600))).unwrap()
}

fn model_engine(dir: &std::path::Path, workers: usize) -> Engine {
    Engine::open_with(
        dir,
        EngineOptions::new().shot_model(ModelChoice::Off).visual_model(ModelChoice::Off).workers(workers),
    )
    .unwrap()
}

#[test]
fn schemas_outside_the_subset_are_422_with_the_pointer_and_prompts_round_trip() {
    let (_d, engine) = temp_engine();
    let prompts = engine.prompts();
    let mut bad = scene_prompt();
    bad.json_schema["properties"]["mood"]["type"] = json!("date");
    let err = prompts.create(&bad, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unprocessable);
    assert!(
        matches!(&err, Error::InvalidSchema { pointer, .. } if pointer == "/json_schema/properties/mood/type"),
        "{err}"
    );
    let mut short = scene_prompt();
    short.prompt_text = "too short".into();
    assert_eq!(prompts.create(&short, None).unwrap_err().kind(), ErrorKind::BadRequest);

    let p = prompts.create(&scene_prompt(), Some("k1")).unwrap();
    assert_eq!(prompts.create(&scene_prompt(), Some("k1")).unwrap().prompt_id, p.prompt_id, "same key, same prompt");
    let mut other = scene_prompt();
    other.name = "Another name".into();
    assert!(matches!(prompts.create(&other, Some("k1")), Err(Error::IdempotencyConflict { .. })));
    assert_eq!(prompts.list(true).unwrap().len(), 1);

    let mut u = PromptUpdate::default();
    u.prompt_text = Some("Name the place and the mood of the scene.".into());
    u.video_level = Some(videovector::VideoLevel::new(
        "Sum up the media.",
        json!({"type": "object", "properties": {"summary": {"type": "string"}}}),
    ));
    let updated = prompts.update(&p.prompt_id, &u, Some("u1")).unwrap();
    assert_eq!(prompts.update(&p.prompt_id, &u, Some("u1")).unwrap(), updated, "a repeat changes nothing");
    let mut renamed = PromptUpdate::default();
    renamed.name = Some("Renamed".into());
    assert!(matches!(prompts.update(&p.prompt_id, &renamed, Some("u1")), Err(Error::IdempotencyConflict { .. })));
    assert_eq!(updated.name, p.name, "fields not given stay");
    assert!(updated.video_level.is_some());
    let mut clear = PromptUpdate::default();
    clear.clear_video_level = true;
    assert!(prompts.update(&p.prompt_id, &clear, None).unwrap().video_level.is_none());
    let mut bad_update = PromptUpdate::default();
    bad_update.json_schema = Some(json!({"type": "object", "properties": {"a": {"type": "array"}}}));
    let err = prompts.update(&p.prompt_id, &bad_update, None).unwrap_err();
    assert!(matches!(&err, Error::InvalidSchema { pointer, .. } if pointer == "/json_schema/properties/a"), "{err}");

    let usage = prompts.usage(&p.prompt_id).unwrap();
    assert!(!usage.is_in_use && usage.schema_properties_count == 3, "{usage:?}");
    prompts.delete(&p.prompt_id, false).unwrap();
    assert_eq!(prompts.get(&p.prompt_id).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn test_schema_reports_every_violation_with_its_path() {
    let (_d, engine) = temp_engine();
    let check = engine
        .prompts()
        .test_schema(&scene_schema(), &json!({"place": "moon", "mood": "calm", "objects": ["a", 3]}))
        .unwrap();
    assert!(!check.valid && check.validated_data.is_none());
    let paths: Vec<&str> = check.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths.len(), 2, "{check:?}");
    assert!(paths.contains(&"/place") && paths.contains(&"/objects/1"), "{paths:?}");
    let ok = engine.prompts().test_schema(&scene_schema(), &json!({"place": "beach"})).unwrap();
    assert!(ok.valid && ok.validated_data.is_some() && ok.error.is_none());
}

#[test]
fn bad_run_requests_are_refused_before_anything_is_stored() {
    let (_d, engine) = temp_engine();
    let runs = engine.prompt_runs();
    let p = engine.prompts().create(&scene_prompt(), None).unwrap();
    let r = engine.videos().ingest(fixture("speech.wav"), &IngestOptions::default()).unwrap();
    let vid = r.video_id.unwrap().to_string();
    let videos = |ids: Vec<String>| RunTarget::Videos { video_ids: ids, index_id: None };
    let kind = |req: RunRequest| runs.execute(&req, None).unwrap_err().kind();
    assert_eq!(kind(RunRequest::new("prompt_nope", RunTarget::Playground)), ErrorKind::NotFound);
    assert_eq!(
        kind(RunRequest::new(p.prompt_id.as_str(), RunTarget::Index { index_id: "nope".into() })),
        ErrorKind::NotFound
    );
    assert_eq!(kind(RunRequest::new(p.prompt_id.as_str(), videos(vec!["vid_nope".into()]))), ErrorKind::NotFound);
    assert_eq!(kind(RunRequest::new(p.prompt_id.as_str(), videos(vec![]))), ErrorKind::BadRequest);
    let mut fixed = RunRequest::new(p.prompt_id.as_str(), videos(vec![vid.clone()]));
    fixed.video_segmentation_type = VideoSegmentation::Fixed;
    assert_eq!(kind(fixed), ErrorKind::BadRequest, "fixed without a duration");
    engine.indexes().create("empty", None).unwrap();
    assert_eq!(
        kind(RunRequest::new(p.prompt_id.as_str(), RunTarget::Index { index_id: "empty".into() })),
        ErrorKind::BadRequest
    );
    assert_eq!(runs.get("run_nope").unwrap_err().kind(), ErrorKind::NotFound);
    assert!(runs.list(10).unwrap().is_empty(), "nothing was stored");
}

#[test]
fn a_pending_run_cancels_at_once_and_execute_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        EngineOptions::new().shot_model(ModelChoice::Off).visual_model(ModelChoice::Off).asr_model(ModelChoice::Off);
    let worker = Engine::open_with(dir.path(), options.clone().workers(1)).unwrap();
    worker.videos().ingest(fixture("speech.wav"), &IngestOptions::default()).unwrap();
    drop(worker);
    // No workers: the run stays pending.
    let engine = Engine::open_with(dir.path(), options.workers(0)).unwrap();
    let p = engine.prompts().create(&scene_prompt(), None).unwrap();
    let req = RunRequest::new(p.prompt_id.as_str(), RunTarget::Playground);
    let run = engine.prompt_runs().execute(&req, Some("run-1")).unwrap();
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(engine.prompt_runs().execute(&req, Some("run-1")).unwrap().run_id, run.run_id);
    let mut other = req.clone();
    other.enable_transcription = false;
    assert!(matches!(engine.prompt_runs().execute(&other, Some("run-1")), Err(Error::IdempotencyConflict { .. })));
    assert_eq!(engine.prompt_runs().list(10).unwrap().len(), 1);
    let cancelled = engine.prompt_runs().cancel(&run.run_id).unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(engine.prompts().usage(&p.prompt_id).unwrap().is_in_use);
    assert_eq!(engine.prompts().delete(&p.prompt_id, false).unwrap_err().kind(), ErrorKind::Conflict);
    engine.prompts().delete(&p.prompt_id, true).unwrap();
    assert!(!engine.prompts().get(&p.prompt_id).unwrap().is_active, "in use: deactivated, not deleted");
}

/// Every labelled scene through the default model: enum fields right on at least 80% of
/// segments, every stored result valid for the schema, the call log complete, the estimate's
/// counts equal to what the run did.
#[test]
fn scene_labels_are_extracted_accurately_and_every_result_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let engine = model_engine(&dir.path().join("data"), 1);
    let truth: HashMap<String, (String, String)> = std::fs::read_to_string(fixtures_dir().join("scenes.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), (f[1].to_string(), f[2].to_string()))
        })
        .collect();
    let mut titles = HashMap::new();
    for name in truth.keys() {
        let r = engine.videos().ingest(fixture(&format!("scenes/{name}.wav")), &IngestOptions::default()).unwrap();
        titles.insert(r.video_id.unwrap(), name.clone());
    }
    let prompt = engine.prompts().create(&scene_prompt(), None).unwrap();
    let req = RunRequest::new(prompt.prompt_id.as_str(), RunTarget::Playground).processing_model("gemini-2.5-flash");
    let estimate = engine.prompt_runs().estimate(&req).unwrap();
    let run = engine.prompt_runs().execute(&req, None).unwrap();
    let run = engine.prompt_runs().wait(&run.run_id, Some(Duration::from_secs(1800))).unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!((estimate.videos, estimate.segments), (run.total_videos, run.total_segments));
    let calls = engine.prompt_runs().llm_calls(&run.run_id).unwrap();
    assert_eq!(calls.len() as u64, estimate.model_calls);
    assert_eq!(calls.iter().map(|c| c.input_tokens).sum::<u64>(), estimate.input_tokens, "input tokens are exact");
    assert!(calls.iter().all(|c| c.status == "completed" && c.prompt_text.contains("Transcript of the segment")));

    let (mut right, mut total) = (0, 0);
    for (video_id, name) in &titles {
        let results = engine.prompt_runs().results(&run.run_id, video_id, &PageRequest::first(100)).unwrap().data;
        assert!(!results.is_empty());
        for r in results {
            let check = engine.prompts().test_schema(&scene_schema(), &r.metadata).unwrap();
            assert!(check.valid, "{name}: {:?} breaks the schema: {:?}", r.metadata, check.errors);
            assert!(r.metadata_text.contains("place: "), "{}", r.metadata_text);
            let (place, mood) = &truth[name];
            right += usize::from(r.metadata["place"] == json!(place)) + usize::from(r.metadata["mood"] == json!(mood));
            total += 2;
        }
    }
    let accuracy = right as f64 / total as f64;
    eprintln!("scene enum accuracy: {right}/{total} = {accuracy:.2}");
    assert!(accuracy >= 0.8, "enum fields right on {right} of {total}");
    // What was extracted is searchable as text (the metadata space).
    let hits = engine.search().text(None, &videovector::TextSearch::new("place: kitchen").top_k(3)).unwrap();
    assert!(!hits.results.is_empty());
}

/// A replies-cut-short engine fails every segment: the run ends `failed`, the manifest lists each
/// segment with its operation and error; a retry with room to answer fixes one segment.
#[test]
fn failed_segments_are_listed_and_a_retry_fixes_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cramped = Engine::open_with(
        &data,
        EngineOptions::new()
            .shot_model(ModelChoice::Off)
            .visual_model(ModelChoice::Off)
            .text_model(ModelChoice::Off)
            .max_reply_tokens(3),
    )
    .unwrap();
    let video_id =
        cramped.videos().ingest(fixture("scenes/scene_06.wav"), &IngestOptions::default()).unwrap().video_id.unwrap();
    let prompt = cramped.prompts().create(&scene_prompt(), None).unwrap();
    let run = run_one(&cramped, &prompt, &video_id);
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(run.total_segments >= 1 && run.failed_segments == run.total_segments, "{run:?}");
    let failed = cramped.prompt_runs().failed_segments(&run.run_id).unwrap();
    assert_eq!(failed.len() as u64, run.total_segments);
    assert!(
        failed
            .iter()
            .all(|f| f.failed_operation == "field_extraction" && f.retryable && f.error.contains("cut at 3 tokens")),
        "{failed:?}"
    );
    let calls = cramped.prompt_runs().llm_calls(&run.run_id).unwrap();
    assert!(calls.iter().all(|c| c.status == "failed" && c.error_message.is_some() && c.response_text.is_some()));
    drop(cramped);

    let engine = model_engine(&data, 1);
    let first = &failed[0];
    let retry = engine.prompt_runs().retry_segment(&run.run_id, &video_id, &first.segment_id, Some("r1")).unwrap();
    assert_eq!(
        engine.prompt_runs().retry_segment(&run.run_id, &video_id, &first.segment_id, Some("r1")).unwrap().retry_id,
        retry.retry_id
    );
    let done = loop {
        let r = engine.prompt_runs().retry_status(&retry.retry_id).unwrap();
        if matches!(r.status.as_str(), "completed" | "failed") {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done.status, "completed", "{done:?}");
    let left = engine.prompt_runs().failed_segments(&run.run_id).unwrap();
    assert_eq!(left.len(), failed.len() - 1);
    let fixed = engine.prompt_runs().results(&run.run_id, &video_id, &PageRequest::first(100)).unwrap().data;
    let fixed = fixed.iter().find(|r| r.segment_id == first.segment_id).unwrap();
    assert!(fixed.field_extraction_succeeded && fixed.attempts == 2, "{fixed:?}");
    assert_eq!(fixed.metadata["place"], json!("beach"));
    assert_eq!(
        engine.prompt_runs().retry_segment(&run.run_id, "vid_nope", &first.segment_id, None).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// `kill -9` in the middle of a run: the next engine on the folder resumes it, and segments done
/// before the kill are neither asked again nor stored twice.
#[test]
fn a_killed_run_resumes_without_redoing_done_segments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = model_engine(&data, 1);
    let mut ids = Vec::new();
    for name in ["scene_01", "scene_02", "scene_03"] {
        ids.push(
            engine
                .videos()
                .ingest(fixture(&format!("scenes/{name}.wav")), &IngestOptions::default())
                .unwrap()
                .video_id
                .unwrap(),
        );
    }
    let prompt = engine.prompts().create(&scene_prompt(), None).unwrap();
    drop(engine);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_videovector"))
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--visual-model",
            "off",
            "run",
            "execute",
            "--prompt",
            prompt.prompt_id.as_str(),
            "--playground",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let watcher = Engine::open_with(
        &data,
        EngineOptions::new().shot_model(ModelChoice::Off).visual_model(ModelChoice::Off).workers(0),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let run_id = loop {
        assert!(started.elapsed() < Duration::from_secs(300), "the run never got going");
        if let Some(r) = watcher.prompt_runs().list(1).unwrap().first() {
            if r.completed_segments >= 2 {
                break r.run_id.clone();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap(); // SIGKILL, mid-run
    child.wait().unwrap();
    let before = watcher.prompt_runs().get(&run_id).unwrap();
    assert_eq!(before.status, RunStatus::Processing, "the kill left the run unfinished");
    assert!(before.completed_segments < before.total_segments, "{before:?}");
    drop(watcher);

    let engine = model_engine(&data, 1);
    let run = engine.prompt_runs().wait(&run_id, Some(Duration::from_secs(600))).unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    let mut results = 0;
    for v in &ids {
        results += engine.prompt_runs().results(&run_id, v, &PageRequest::first(100)).unwrap().data.len() as u64;
    }
    assert_eq!(results, run.total_segments, "one result per segment, none twice");
    let calls = engine.prompt_runs().llm_calls(&run_id).unwrap();
    let mut asked: HashMap<String, usize> = HashMap::new();
    for c in calls.iter().filter(|c| c.status == "completed") {
        *asked.entry(c.segment_id.clone().unwrap().to_string()).or_default() += 1;
    }
    assert!(asked.values().all(|&n| n == 1), "a segment done before the kill was asked again: {asked:?}");
    assert_eq!(asked.len() as u64, run.total_segments);
}

/// A leaf schema and a value description for the generator below.
fn leaf() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    prop_oneof![
        Just(json!({"type": "string"})),
        Just(json!({"type": "integer"})),
        Just(json!({"type": "number"})),
        Just(json!({"type": "boolean"})),
        proptest::sample::subsequence(vec!["red", "green", "blue", "calm", "loud", "indoor"], 2..4)
            .prop_map(|v| json!({"type": "string", "enum": v})),
        Just(json!({"type": "array", "items": {"type": "string"}})),
        Just(json!({"type": "array", "items": {"type": "integer"}})),
    ]
}

fn schema_strategy() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let names = proptest::sample::subsequence(vec!["colour", "count", "place", "mood", "tags", "score", "title"], 1..4);
    let object = |names: Vec<&'static str>, leaves: Vec<Value>| {
        let props: serde_json::Map<String, Value> = names.iter().map(|n| n.to_string()).zip(leaves).collect();
        json!({"type": "object", "properties": props})
    };
    (names.clone(), proptest::collection::vec(leaf(), 4), names, proptest::collection::vec(leaf(), 4), any::<bool>())
        .prop_map(move |(n1, l1, n2, l2, nest)| {
            let mut outer = object(n1, l1);
            if nest {
                outer["properties"]["detail"] = object(n2, l2);
            }
            outer
        })
}

/// Constrained decoding over generated schemas and inputs: every reply that ends is valid JSON
/// for its schema (checked by the `jsonschema` validator, not by the decoder that produced it).
#[test]
fn constrained_replies_are_valid_for_generated_schemas() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use videovector::internals::ml::llm::{resolve, LanguageModel, Message};
    let path =
        resolve(videovector::DEFAULT_LANGUAGE_MODEL, &videovector::internals::ml::source::search_dirs(None)).unwrap();
    let model =
        std::cell::RefCell::new(LanguageModel::load(&path, "default", &videovector::internals::ml::device()).unwrap());
    let (_d, engine) = temp_engine();
    let sentences = proptest::sample::select(vec![
        "A red bus stops in front of the station at noon; three people get off.",
        "The blue kitchen is quiet; a cat sleeps on 2 chairs.",
        "Loud music plays indoors while 40 guests dance and laugh.",
        "Nothing is said. The screen stays green for ten seconds.",
    ]);
    let mut runner = TestRunner::new_with_rng(
        Config { cases: 6, ..Config::default() },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    runner
        .run(&(schema_strategy(), sentences), |(schema, text)| {
            let messages = [Message::system("Fill the fields from the text. Reply with JSON."), Message::user(text)];
            let g = model.borrow_mut().generate(&messages, Some(&schema), 256, &|| false).unwrap();
            proptest::prop_assert_eq!(g.finish, videovector::internals::ml::llm::Finish::Stop, "reply cut: {}", g.text);
            let value: Value = serde_json::from_str(&g.text)
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}: {}", g.text)))?;
            let check = engine.prompts().test_schema(&schema, &value).unwrap();
            proptest::prop_assert!(check.valid, "{} breaks {}: {:?}", g.text, schema, check.errors);
            Ok(())
        })
        .unwrap();
}

/// A run that asks for another segmentation than the ingest's makes segments of its own (with
/// its run id), found by `run_id` and `latest_run`; the ingest segments stay as they were; the
/// estimate plans the same segments; `run_ids` search stays inside the run.
#[test]
fn a_run_with_its_own_segmentation_makes_run_backed_segments() {
    use videovector::{AudioSegmentation, SegmentQuery, TextSearch};
    let dir = tempfile::tempdir().unwrap();
    let engine = model_engine(&dir.path().join("data"), 1);
    let video_id = engine.videos().ingest(fixture("speech.wav"), &IngestOptions::default()).unwrap().video_id.unwrap();
    let ingest_segments = engine.videos().list_segments(&video_id, &SegmentQuery::new()).unwrap().data;
    let prompt = engine.prompts().create(&scene_prompt(), None).unwrap();
    let mut req = RunRequest::new(
        prompt.prompt_id.as_str(),
        RunTarget::Videos { video_ids: vec![video_id.to_string()], index_id: None },
    );
    req.audio_segmentation_type = AudioSegmentation::Fixed;
    req.audio_segment_duration = Some(5);
    let estimate = engine.prompt_runs().estimate(&req).unwrap();
    assert_eq!(estimate.segments, 3, "13.7 s in 5 s spans");
    let run = engine.prompt_runs().execute(&req, None).unwrap();
    let run = engine.prompt_runs().wait(&run.run_id, Some(Duration::from_secs(600))).unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!(run.total_segments, 3);
    let own = engine.videos().list_segments(&video_id, &SegmentQuery::new().run_id(run.run_id.as_str())).unwrap().data;
    assert_eq!(own.len(), 3);
    assert!(own.iter().all(|s| s.run_id.as_deref() == Some(run.run_id.as_str()) && s.segmentation_type == "fixed"));
    assert_eq!((own[0].start_us, own[2].end_us), (0, ingest_segments.last().unwrap().end_us), "they tile the media");
    assert_eq!(own[1].start, 5.0);
    let latest = engine.videos().list_segments(&video_id, &SegmentQuery::new().latest_run()).unwrap().data;
    assert_eq!(latest, own);
    assert_eq!(engine.videos().list_segments(&video_id, &SegmentQuery::new()).unwrap().data, ingest_segments);
    let results = engine.prompt_runs().results(&run.run_id, &video_id, &PageRequest::first(10)).unwrap().data;
    let result_ids: Vec<_> = results.iter().map(|r| r.segment_id.clone()).collect();
    assert_eq!(result_ids, own.iter().map(|s| s.segment_id.clone()).collect::<Vec<_>>());
    let hits = engine
        .search()
        .text(None, &TextSearch::new("lighthouse on the coast").run_ids(vec![run.run_id.to_string()]))
        .unwrap();
    assert!(!hits.results.is_empty() && hits.results.iter().all(|h| result_ids.contains(&h.segment_id)), "{hits:?}");
}

/// `enable_transcription`: media ingested without a transcript is transcribed by the run, so the
/// model hears what is said.
#[test]
fn a_run_transcribes_media_ingested_without_a_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let engine = model_engine(&dir.path().join("data"), 1);
    let mut opts = IngestOptions::default();
    opts.enable_transcription = Some(false);
    let video_id = engine.videos().ingest(fixture("scenes/scene_10.wav"), &opts).unwrap().video_id.unwrap();
    assert!(engine.videos().transcript(&video_id).unwrap().phrases.is_empty());
    let prompt = engine.prompts().create(&scene_prompt(), None).unwrap();
    let run = run_one(&engine, &prompt, &video_id);
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    let said = engine.videos().transcript(&video_id).unwrap().phrases;
    assert!(said.iter().any(|p| p.text.to_lowercase().contains("rain")), "{said:?}");
    let calls = engine.prompt_runs().llm_calls(&run.run_id).unwrap();
    assert!(calls.iter().any(|c| c.prompt_text.to_lowercase().contains("rain")), "the model heard the transcript");
}

/// Reusing the attention state of a shared prompt prefix changes nothing in the reply: the same
/// prompt read after another that shares its beginning gives the reply it gives when read cold.
#[test]
fn a_reused_prompt_prefix_gives_the_same_reply_as_a_cold_read() {
    use videovector::internals::ml::llm::{resolve, LanguageModel, Message};
    let path =
        resolve(videovector::DEFAULT_LANGUAGE_MODEL, &videovector::internals::ml::source::search_dirs(None)).unwrap();
    let mut model = LanguageModel::load(&path, "default", &videovector::internals::ml::device()).unwrap();
    let system = Message::system("You extract structured metadata from one segment of a media file. Reply with JSON.");
    let a = [system.clone(), Message::user("Evidence: a red bus stops at the station.")];
    let b = [system, Message::user("Evidence: two cats sleep in a quiet kitchen.")];
    let schema = scene_schema();
    model.generate(&a, Some(&schema), 64, &|| false).unwrap();
    let warm = model.generate(&b, Some(&schema), 64, &|| false).unwrap();
    assert!(warm.cached_tokens > 10, "the system turn was reused: {}", warm.cached_tokens);
    let cold = model.measure(&model.render(&b), Some(&schema), 64).unwrap();
    assert_eq!(cold.cached_tokens, 0);
    assert_eq!(warm.text, cold.text);
    assert_eq!(warm.input_tokens, cold.input_tokens);
}

/// The media-wide synthesis: one more call per media item over the segment results (with the
/// transcript when `transcription` is included), valid for its own schema, logged as `video_level`.
#[test]
fn video_level_synthesis_summarises_each_media_item() {
    let dir = tempfile::tempdir().unwrap();
    let engine = model_engine(&dir.path().join("data"), 1);
    let video_id =
        engine.videos().ingest(fixture("scenes/scene_07.wav"), &IngestOptions::default()).unwrap().video_id.unwrap();
    let mut vl = videovector::VideoLevel::new(
        "Say where the whole recording takes place and its overall mood.",
        json!({"type": "object", "properties": {
            "main_place": {"type": "string", "enum": ["beach", "kitchen", "forest", "office", "street"]},
            "overall_mood": {"type": "string", "enum": ["calm", "tense", "joyful", "sad"]},
            "summary": {"type": "string"}}}),
    );
    vl.included_segment_fields = Some(vec!["place".into(), "mood".into(), "transcription".into()]);
    let prompt = engine.prompts().create(&scene_prompt().video_level(vl.clone()), None).unwrap();
    let run = run_one(&engine, &prompt, &video_id);
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!((run.video_level_total_items, run.video_level_completed_items), (1, 1));
    let result = engine.prompt_runs().video_result(&run.run_id, &video_id).unwrap();
    assert_eq!(result.status, "completed");
    assert_eq!(result.successful_segment_count, run.total_segments);
    assert!(engine.prompts().test_schema(&vl.json_schema, &result.metadata).unwrap().valid, "{:?}", result.metadata);
    assert_eq!(result.metadata["main_place"], json!("kitchen"), "{:?}", result.metadata);
    assert!(result.metadata_text.contains("main_place: kitchen"));
    let calls = engine.prompt_runs().llm_calls(&run.run_id).unwrap();
    let synthesis: Vec<_> = calls.iter().filter(|c| c.purpose == "video_level").collect();
    assert_eq!(synthesis.len(), 1);
    assert!(synthesis[0].prompt_text.contains("grandmother"), "the transcript was included");
    // A prompt without video_level has no media-wide result (404).
    let plain = engine.prompts().create(&scene_prompt(), None).unwrap();
    let run2 = run_one(&engine, &plain, &video_id);
    assert_eq!(engine.prompt_runs().video_result(&run2.run_id, &video_id).unwrap_err().kind(), ErrorKind::NotFound);
}

/// Cancelling a running run: it stops at its next check, ends `cancelled`, and keeps the results
/// of the segments already done.
#[test]
fn a_running_run_cancels_and_keeps_done_segments() {
    let dir = tempfile::tempdir().unwrap();
    let engine = model_engine(&dir.path().join("data"), 1);
    for name in ["scene_01", "scene_02", "scene_03", "scene_04"] {
        engine.videos().ingest(fixture(&format!("scenes/{name}.wav")), &IngestOptions::default()).unwrap();
    }
    let prompt = engine.prompts().create(&scene_prompt(), None).unwrap();
    let run =
        engine.prompt_runs().execute(&RunRequest::new(prompt.prompt_id.as_str(), RunTarget::Playground), None).unwrap();
    let started = std::time::Instant::now();
    while engine.prompt_runs().get(&run.run_id).unwrap().completed_segments < 1 {
        assert!(started.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(20));
    }
    engine.prompt_runs().cancel(&run.run_id).unwrap();
    let run = engine.prompt_runs().wait(&run.run_id, Some(Duration::from_secs(120))).unwrap();
    assert_eq!(run.status, RunStatus::Cancelled, "{run:?}");
    assert!(run.completed_segments >= 1 && run.completed_segments < run.total_segments, "{run:?}");
    assert!(run.cancel_requested_at.is_some());
    let events: Vec<(String, Option<String>)> =
        engine.events().since(0, 1000).unwrap().into_iter().map(|e| (e.event_type.to_string(), e.run_id)).collect();
    let of_run = |t: &str| events.iter().any(|(e, r)| e == t && r.as_deref() == Some(run.run_id.as_str()));
    assert!(of_run("prompt_run.created") && of_run("prompt_run.cancelled"), "{events:?}");
}

/// `generate` drafts a prompt with the language model; the draft passes the same checks as any
/// prompt and can be created as it is.
#[test]
fn a_generated_draft_is_a_valid_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let engine = model_engine(&dir.path().join("data"), 0);
    let draft = engine.prompts().generate("Find the weather and how many people are in each scene", None).unwrap();
    assert!(draft.json_schema["properties"].as_object().is_some_and(|p| !p.is_empty()), "{draft:?}");
    let created = engine.prompts().create(&draft, None).unwrap();
    assert_eq!(created.json_schema, draft.json_schema);
}
