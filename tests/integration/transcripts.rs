//! Transcription inside ingest: phrases land in the segment where they are spoken, what was
//! said is searchable by meaning, audio files are transcribed like videos, and it can be
//! turned off.

use videovector::TextSearch;
use videovector::{Engine, EngineOptions, IngestOptions, ModelChoice, VideoSegmentation};

use crate::common::{fixture, spoken_texts, truth_of};
use crate::whisper::{normalise, word_errors};

fn engine(dir: &std::path::Path) -> Engine {
    Engine::open_with(dir, EngineOptions::new().shot_model(ModelChoice::Off).visual_model(ModelChoice::Off)).unwrap()
}

#[test]
fn each_utterance_lands_in_its_segment_and_text_search_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("data"));
    let mut opts = IngestOptions::default();
    opts.segmentation.video_segmentation_type = VideoSegmentation::ContentAware;
    let r = engine.videos().ingest(fixture("slideshow.mp4"), &opts).unwrap();
    assert!(r.warnings.iter().all(|w| !w.contains("transcribed")), "{:?}", r.warnings);
    let video_id = r.video_id.clone().unwrap();
    let transcript = engine.videos().transcript(&video_id).unwrap();
    let speech = truth_of("slideshow.mp4")["speech"].as_array().unwrap().clone();
    assert_eq!(r.segments.len(), speech.len());
    for (k, (segment, truth)) in r.segments.iter().zip(&speech).enumerate() {
        // The phrases whose middle is in this segment say this slot's utterance.
        let said: Vec<&str> = transcript
            .phrases
            .iter()
            .filter(|p| (p.start + p.end) / 2.0 >= segment.start && (p.start + p.end) / 2.0 < segment.end)
            .map(|p| p.text.as_str())
            .collect();
        let reference = normalise(truth["text"].as_str().unwrap());
        let errors = word_errors(&normalise(&said.join(" ")), &reference);
        assert!(errors * 4 <= reference.len(), "segment {k} ({}..{}) heard {said:?}", segment.start, segment.end);
        // The utterance's first phrase starts when it does (a window that opened in the pause
        // before it had it start 1.35 s early).
        let first = transcript.phrases.iter().find(|p| (p.start + p.end) / 2.0 >= segment.start).unwrap();
        let start = truth["start"].as_f64().unwrap();
        assert!((first.start - start).abs() <= 0.5, "segment {k}: {first:?} starts {start} s into the media");
    }
    // Phrases are in order and do not overlap (a phrase belongs to one segment: the one holding its middle).
    assert!(transcript.phrases.windows(2).all(|w| w[0].end <= w[1].start + 1e-6), "{:?}", transcript.phrases);
    // Words of the third utterance find the third segment, with what was said as the snippet.
    let q = TextSearch::new("rather selfish and cold hearted").top_k(3);
    let hits = engine.search().text(None, &q).unwrap();
    assert_eq!(hits.results[0].segment_id, r.segments[2].segment_id, "{:?}", hits.results);
    assert_eq!(hits.results[0].modality, videovector::Modality::Transcript);
    assert!(hits.results[0].snippet.as_deref().unwrap_or("").to_lowercase().contains("selfish"));

    // Keywords (FTS5): every word must occur; the hit is the segment holding the phrase.
    let q = TextSearch::new("amiable woman").top_k(5);
    let kw = engine.search().keyword(None, &q).unwrap();
    assert_eq!(kw.score_kind, videovector::ScoreKind::Bm25);
    assert_eq!(kw.results.len(), 1, "{:?}", kw.results);
    assert_eq!(kw.results[0].segment_id, r.segments[3].segment_id);
    let none = TextSearch::new("spaceship").top_k(5);
    assert!(engine.search().keyword(None, &none).unwrap().results.is_empty());
}

#[test]
fn audio_files_are_transcribed_and_transcription_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("data"));
    let r = engine.videos().ingest(fixture("speech.mp3"), &IngestOptions::default()).unwrap();
    let t = engine.videos().transcript(r.video_id.as_deref().unwrap()).unwrap();
    let sentences = truth_of("speech.wav")["speech"].as_array().unwrap().clone();
    let heard = normalise(&t.phrases.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(" "));
    let said = normalise(&sentences.iter().map(|s| s["text"].as_str().unwrap()).collect::<Vec<_>>().join(" "));
    // Synthetic espeak voice: hard for tiny.en ("brown fox jumps over" comes out garbled, and
    // "lazy dog" comes and goes with the window around it: faster-whisper on the same weights
    // hears "silver blazy dog"), so this checks that the MP3 is heard end to end, each
    // sentence by a word the model hears however the audio is windowed, not the word error
    // rate (that is the LibriVox test's job).
    assert!(word_errors(&heard, &said) * 2 <= said.len(), "heard {heard:?}");
    for word in ["quick", "rocky", "coast", "morning"] {
        assert!(heard.iter().any(|w| w == word), "{word} not heard in {heard:?}");
    }
    for (p, s) in t.phrases.iter().zip(&sentences) {
        let (start, end) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
        assert!(p.start <= end && p.end >= start, "phrase {p:?} is not where the sentence {start}..{end} is");
    }

    let silent = engine.videos().ingest(fixture("silence.wav"), &IngestOptions::default()).unwrap();
    assert!(
        engine.videos().transcript(silent.video_id.as_deref().unwrap()).unwrap().phrases.is_empty(),
        "no text from silence"
    );

    let off = IngestOptions::new().enable_transcription(false);
    let r = engine.videos().ingest(fixture("speech.wav"), &off).unwrap();
    assert!(engine.videos().transcript(r.video_id.as_deref().unwrap()).unwrap().phrases.is_empty());

    // Asking for transcription without a speech model is an error before anything is stored.
    let no_asr = Engine::open_with(
        dir.path().join("other"),
        EngineOptions::new().shot_model(ModelChoice::Off).visual_model(ModelChoice::Off).asr_model(ModelChoice::Off),
    )
    .unwrap();
    let on = IngestOptions::new().enable_transcription(true);
    let err = no_asr.videos().ingest(fixture("speech.wav"), &on).unwrap_err();
    assert_eq!(err.kind(), videovector::ErrorKind::Unavailable, "{err}");
    assert_eq!(crate::common::media_count(&no_asr), 0);
}

#[test]
fn a_file_is_transcribed_from_its_audio_alone_without_ingesting() {
    let path = fixture("slideshow.mp4");
    // The analysis behind it decodes no video: no frames, no cuts, and the audio's own length.
    let audio = videovector::internals::analyse_audio_file(&path).unwrap();
    assert!(audio.frames.is_empty() && audio.cuts.is_empty(), "{} frames", audio.frames.len());
    assert_eq!(audio.audio_db.len(), 4000, "one loudness per 10 ms of 40 s");
    assert!((audio.duration_us - 40_000_000).abs() <= 30_000, "{} us", audio.duration_us);
    let full = videovector::internals::analyse_file(&path, &Default::default(), None).unwrap();
    assert!(!full.frames.is_empty());
    assert_eq!(audio.audio_db, full.audio_db, "the same loudness either way");

    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("data"));
    let heard = videovector::tools::transcribe_file(&engine, &path).unwrap();
    assert!((heard.audio_seconds - 40.0).abs() <= 0.03, "{}", heard.audio_seconds);
    let said: Vec<&str> = heard.phrases.iter().map(|p| p.text.as_str()).collect();
    let reference = normalise(&spoken_texts("slideshow.mp4").join(" "));
    let errors = word_errors(&normalise(&said.join(" ")), &reference);
    assert!(errors * 10 <= reference.len(), "{errors} errors in {} words: {said:?}", reference.len());
    assert!(heard.phrases.iter().all(|p| 0.0 <= p.start && p.start <= p.end && p.end <= 40.0), "{:?}", heard.phrases);
}
