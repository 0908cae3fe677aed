//! Vector search end to end: keyframes embedded at ingest with a (tiny, formula-built) CLIP
//! checkpoint, transcripts with the real all-MiniLM-L6-v2, ANN files that rebuild themselves,
//! models that are never mixed, and bad requests that are errors.

use std::path::Path;

use videovector::internals::ml::text::TEXT_MODEL_FILES;
use videovector::internals::ml::{device, source, TextEncoder, DEFAULT_TEXT_MODEL};
use videovector::{Engine, EngineOptions, ErrorKind, IngestOptions, ModelChoice, Space, VideoSegmentation};
use videovector::{ImageInput, ImageSearch, Modality, MultimodalSearch, ScoreKind, TextSearch};

use crate::clip_golden::write_tiny_clip;
use crate::common::{fixture, spoken_texts};

fn engine_with(data: &Path, clip_dir: Option<&Path>, text: bool) -> Engine {
    let options = EngineOptions::new()
        .shot_model(ModelChoice::Off)
        .visual_model(clip_dir.map_or(ModelChoice::Off, |d| ModelChoice::Use(d.to_string_lossy().into_owned())))
        .text_model(if text { ModelChoice::Default } else { ModelChoice::Off })
        // Transcripts here are added by hand; the speech model has tests of its own.
        .asr_model(ModelChoice::Off);
    Engine::open_with(data, options).unwrap()
}

fn content_aware() -> IngestOptions {
    let mut o = IngestOptions::default();
    o.segmentation.video_segmentation_type = VideoSegmentation::ContentAware;
    o
}

/// A tiny CLIP folder and an engine on a fresh data folder with the slideshow ingested.
fn slideshow_engine(text: bool) -> (tempfile::TempDir, Engine, Vec<videovector::Segment>) {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip");
    std::fs::create_dir(&clip).unwrap();
    write_tiny_clip(&clip);
    let engine = engine_with(&dir.path().join("data"), Some(&clip), text);
    engine.indexes().create("show", None).unwrap();
    let opts = content_aware().index("show");
    let r = engine.videos().ingest(fixture("slideshow.mp4"), &opts).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    (dir, engine, r.segments)
}

#[test]
fn image_search_finds_each_keyframe_first_with_cosine_one() {
    let (_dir, engine, segments) = slideshow_engine(false);
    assert_eq!(segments.len(), 5);
    for s in &segments {
        let req = ImageSearch::new(ImageInput::Path(s.thumbnail_path.clone().unwrap().into())).top_k(3);
        let r = engine.search().image(Some("show"), &req).unwrap();
        assert_eq!(r.score_kind, ScoreKind::Cosine);
        assert_eq!(r.results.len(), 3);
        assert_eq!(r.results[0].segment_id, s.segment_id);
        assert!((r.results[0].score - 1.0).abs() < 1e-4, "score {}", r.results[0].score);
        assert!(r.results.windows(2).all(|w| w[0].score >= w[1].score), "ordered by score");
        let hit = &r.results[0];
        assert_eq!((hit.start, hit.end, hit.thumbnail_path.as_ref()), (s.start, s.end, s.thumbnail_path.as_ref()));
    }
    // Bytes work like a path.
    let bytes = std::fs::read(segments[2].thumbnail_path.as_ref().unwrap()).unwrap();
    let r = engine.search().image(Some("show"), &ImageSearch::new(ImageInput::Bytes(bytes))).unwrap();
    assert_eq!(r.results[0].segment_id, segments[2].segment_id);
    assert_eq!(r.results.len(), 5, "top_k defaults to 10, and there are 5 segments");
}

#[test]
fn multimodal_scores_are_the_weighted_sum_of_cosines() {
    let (_dir, engine, segments) = slideshow_engine(false);
    let image = ImageInput::Path(segments[1].thumbnail_path.clone().unwrap().into());
    let text = "a photo of a cat";
    let only_text = engine.search().text(Some("show"), &TextSearch::new(text).top_k(5)).unwrap();
    let only_image = engine.search().image(Some("show"), &ImageSearch::new(image.clone()).top_k(5)).unwrap();
    let req = MultimodalSearch::new().text(text).image(image).weights(0.7, 0.3).top_k(5);
    let both = engine.search().multimodal(Some("show"), &req).unwrap();
    assert_eq!(both.score_kind, ScoreKind::WeightedCosine);
    assert_eq!(both.results.len(), 5);
    let cos = |r: &videovector::SearchResponse, id: &str| r.results.iter().find(|h| h.segment_id == id).unwrap().score;
    for h in &both.results {
        let expected = 0.7 * cos(&only_text, &h.segment_id) + 0.3 * cos(&only_image, &h.segment_id);
        assert!((h.score - expected).abs() < 1e-5, "{}: {} vs {}", h.segment_id, h.score, expected);
    }
    assert!(both.results.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn text_search_finds_what_was_said_and_fuses_spaces_by_rank() {
    // Transcripts only (no visual model): scores are the sentence encoder's cosines.
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(&dir.path().join("data"), None, true);
    let r = engine.videos().ingest(fixture("slideshow.mp4"), &content_aware()).unwrap();
    let said = spoken_texts("slideshow.mp4");
    for (s, text) in r.segments.iter().zip(&said) {
        engine.embeddings().add_segment_text(&s.segment_id, Space::Transcript, text).unwrap();
    }
    let third = &r.segments[2];
    let q = TextSearch::new("selfish and cold hearted").top_k(5);
    let hits = engine.search().text(None, &q).unwrap();
    assert_eq!(hits.score_kind, ScoreKind::Cosine);
    assert_eq!(hits.results[0].segment_id, third.segment_id, "{:?}", hits.results);
    assert_eq!(hits.results[0].modality, Modality::Transcript);
    assert_eq!(hits.results[0].snippet.as_deref(), Some(said[2].as_str()));

    // With keyframe vectors too, both spaces answer and ranks are fused.
    let (_dir2, engine, segments) = slideshow_engine(true);
    for (s, text) in segments.iter().zip(&said) {
        engine.embeddings().add_segment_text(&s.segment_id, Space::Transcript, text).unwrap();
    }
    let fused = engine.search().text(Some("show"), &q).unwrap();
    assert_eq!(fused.score_kind, ScoreKind::Rrf);
    let top = &fused.results[0];
    let modalities: Vec<&str> = top.matches.iter().map(|m| m.modality.as_str()).collect();
    assert!(modalities.contains(&"visual") && modalities.contains(&"transcript"), "{modalities:?}");
    let expected: f32 = top.matches.iter().map(|m| 1.0 / (60.0 + m.rank as f32)).sum();
    assert!((top.score - expected).abs() < 1e-6);
}

#[test]
fn ann_files_are_rebuilt_when_missing_corrupt_or_stale() {
    let (dir, engine, segments) = slideshow_engine(false);
    let data = dir.path().join("data");
    let clip = dir.path().join("clip");
    let index_id = engine.indexes().retrieve("show").unwrap().index_id;
    let ann_dir = data.join("ann").join(index_id.as_str());
    // `visual.g<generation>.usearch`: the one file of the visual space of the index.
    let ann_file = || -> Option<std::path::PathBuf> {
        let files: Vec<_> = std::fs::read_dir(&ann_dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with("visual.g") && name.ends_with(".usearch") && p.is_file()
            })
            .collect();
        assert!(files.len() <= 1, "one ANN file per space: {files:?}");
        files.into_iter().next()
    };
    let ann = ann_file().expect("the ANN file is saved after ingest");
    drop(engine);
    let probe = ImageSearch::new(ImageInput::Path(segments[3].thumbnail_path.clone().unwrap().into())).top_k(1);
    let search = |engine: &Engine| engine.search().image(Some("show"), &probe).unwrap().results[0].segment_id.clone();

    std::fs::remove_file(&ann).unwrap();
    let engine = engine_with(&data, Some(&clip), false);
    assert_eq!(search(&engine), segments[3].segment_id);
    assert_eq!(ann_file().as_ref(), Some(&ann), "rebuilt and saved");
    drop(engine);

    std::fs::write(&ann, b"garbage").unwrap();
    let engine = engine_with(&data, Some(&clip), false);
    assert_eq!(search(&engine), segments[3].segment_id);
    drop(engine);

    // Stale: the file holds one vector more than the catalog (a delete it never saw).
    let conn = rusqlite::Connection::open(data.join("catalog.sqlite")).unwrap();
    conn.execute("DELETE FROM vectors WHERE segment_id = ?1", [segments[3].segment_id.as_str()]).unwrap();
    drop(conn);
    let engine = engine_with(&data, Some(&clip), false);
    assert_ne!(search(&engine), segments[3].segment_id, "a vector gone from the catalog is not found");
}

#[test]
fn models_are_never_mixed_in_one_space() {
    let (dir, engine, _segments) = slideshow_engine(false);
    drop(engine);
    // Another checkpoint: same layout, other weights (one layer norm changed).
    let other = dir.path().join("clip2");
    std::fs::create_dir(&other).unwrap();
    write_tiny_clip(&other);
    let mut tensors =
        candle_core::safetensors::load(other.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let key = "vision_model.post_layernorm.weight".to_string();
    let t = (tensors[&key].clone() * 2.0).unwrap();
    tensors.insert(key, t);
    candle_core::safetensors::save(&tensors, other.join("model.safetensors")).unwrap();

    let engine = engine_with(&dir.path().join("data"), Some(&other), false);
    let err = engine.search().text(Some("show"), &TextSearch::new("a cat")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("made by"), "{err}");
    let r = engine.videos().ingest(fixture("bikes.mp4"), &IngestOptions::new().index("show")).unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("cannot add to them")), "{:?}", r.warnings);
    // Re-embedding moves the whole index to the new model.
    let n = engine.embeddings().reembed(Some("show")).unwrap();
    assert_eq!(n, 5 + r.segments.len());
    let ok = engine.search().text(Some("show"), &TextSearch::new("a cat").top_k(3)).unwrap();
    assert_eq!(ok.results.len(), 3);
}

#[test]
fn raw_vectors_come_out_and_go_with_deleted_media() {
    let (_dir, engine, segments) = slideshow_engine(false);
    let video_id = segments[0].video_id.clone();
    let e = engine.embeddings().video(&video_id).unwrap();
    assert_eq!(e.data.len(), 5);
    for (v, s) in e.data.iter().zip(&segments) {
        assert_eq!(
            (v.segment_id.as_str(), v.embedding_option.as_str(), v.embedding.len()),
            (s.segment_id.as_str(), "visual", 16)
        );
        let norm: f32 = v.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    let t = engine.embeddings().text("a photo of a cat", Space::Visual).unwrap();
    assert_eq!(t.data.len(), 1);
    assert_eq!(t.data[0].embedding.len(), 16);
    assert!(engine.embeddings().text("  ", Space::Visual).is_err());

    engine.videos().delete(&video_id).unwrap();
    assert_eq!(engine.embeddings().video(&video_id).unwrap_err().kind(), ErrorKind::NotFound);
    let r = engine.search().text(Some("show"), &TextSearch::new("a cat").top_k(10)).unwrap();
    assert!(r.results.is_empty(), "deleted media leaves no vectors behind: {:?}", r.results);
}

#[test]
fn bad_search_requests_are_errors_not_empty_results() {
    let (dir, engine, _segments) = slideshow_engine(false);
    let text = |query: &str, top_k: Option<usize>| {
        let mut req = TextSearch::new(query);
        req.top_k = top_k;
        req
    };
    assert_eq!(engine.search().text(Some("nope"), &text("cat", None)).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(engine.search().text(Some("show"), &text("cat", Some(0))).unwrap_err().kind(), ErrorKind::BadRequest);
    assert_eq!(
        engine.search().text(Some("show"), &text("cat", Some(100_000))).unwrap_err().kind(),
        ErrorKind::BadRequest
    );
    assert_eq!(engine.search().text(Some("show"), &text("   ", None)).unwrap_err().kind(), ErrorKind::BadRequest);
    let runs = TextSearch::new("cat").run_ids(vec!["run_x".into()]);
    assert_eq!(engine.search().text(Some("show"), &runs).unwrap_err().kind(), ErrorKind::NotFound);
    let not_image = dir.path().join("x.png");
    std::fs::write(&not_image, b"hello").unwrap();
    let err = engine.search().image(Some("show"), &ImageSearch::new(ImageInput::Path(not_image))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.to_string().contains("x.png"), "{err}");
    let mm = |tw: Option<f32>, iw: Option<f32>| {
        let mut req = MultimodalSearch::new().text("cat");
        req.text_weight = tw;
        req.image_weight = iw;
        req
    };
    assert_eq!(
        engine.search().multimodal(Some("show"), &mm(Some(-0.1), None)).unwrap_err().kind(),
        ErrorKind::BadRequest
    );
    assert_eq!(
        engine.search().multimodal(Some("show"), &mm(Some(0.0), Some(0.0))).unwrap_err().kind(),
        ErrorKind::BadRequest
    );
    let none = MultimodalSearch::default();
    assert_eq!(engine.search().multimodal(Some("show"), &none).unwrap_err().kind(), ErrorKind::BadRequest);
    // The playground is empty: a valid search with no results.
    assert!(engine.search().text(None, &text("cat", None)).unwrap().results.is_empty());
}

#[test]
fn text_encoder_matches_the_reference_and_ranks_related_sentences_higher() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(&dir.path().join("data"), None, true);
    let model = videovector::internals::text_model_ref(&engine)
        .unwrap()
        .expect("all-MiniLM-L6-v2 is fetched by scripts/fetch_models.sh");
    assert_eq!(model.dims, 384);
    // The encoder the engine loads: the same files, found the same way.
    let files =
        source::resolve(DEFAULT_TEXT_MODEL, TEXT_MODEL_FILES, &source::search_dirs(Some(engine.data_dir()))).unwrap();
    let enc = TextEncoder::load(&files, &device()).unwrap();
    assert_eq!(enc.model_ref(), &model);
    // Golden vectors from HF transformers on the same weights (scripts/golden/minilm_golden.py).
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/minilm_golden.json"))
            .unwrap(),
    )
    .unwrap();
    let cases = golden["sentences"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let v = enc.embed(&texts).unwrap();
    for (ours, case) in v.iter().zip(cases) {
        let reference: Vec<f32> =
            case["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let d = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d <= 1e-4, "{:?} differs from the reference by {d}", case["text"]);
    }
    let cos = |a: usize, b: usize| v[a].iter().zip(&v[b]).map(|(x, y)| x * y).sum::<f32>();
    assert!(cos(0, 1) > cos(0, 2) + 0.25, "bike/cycle {} vs bike/market {}", cos(0, 1), cos(0, 2));
    assert!(cos(2, 3) > cos(2, 1) + 0.25, "market/shares {} vs market/cycle {}", cos(2, 3), cos(2, 1));
    // Batching pads; padding must not change a sentence's vector (alone, through the engine).
    let alone = engine.embeddings().text(texts[1], Space::Transcript).unwrap().data.remove(0).embedding;
    assert!(alone.iter().zip(&v[1]).all(|(a, b)| (a - b).abs() < 1e-5));
}

#[test]
fn a_model_asked_for_by_path_that_is_missing_fails_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-clip");
    let engine = engine_with(&dir.path().join("data"), Some(&missing), false);
    let err = engine.videos().ingest(fixture("bikes.mp4"), &IngestOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let msg = err.to_string();
    assert!(msg.contains("no-such-clip") && msg.contains("preprocessor_config.json"), "{msg}");
    assert_eq!(crate::common::media_count(&engine), 0);
    // The same cause on every later call.
    assert_eq!(engine.search().text(None, &TextSearch::new("x")).unwrap().results.len(), 0);
    assert_eq!(engine.embeddings().embed_missing(None).unwrap_err().to_string(), msg);
}
