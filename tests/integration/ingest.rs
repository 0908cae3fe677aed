//! Ingest through the library: every segmentation mode on real media, keyframes, thumbnails,
//! previews, idempotency, pagination and deletion.

use crate::common::{assert_tiles, f64s, fixture, media_count, temp_engine, truth_of};
use videovector::{
    AudioSegmentation, ErrorKind, IngestOptions, MediaType, PageRequest, SegmentKind, SegmentQuery, Status,
    VideoSegmentation,
};

fn opts(video: VideoSegmentation, duration: Option<f64>) -> IngestOptions {
    let mut o = IngestOptions::default();
    o.segmentation.video_segmentation_type = video;
    o.segmentation.video_segment_duration = duration;
    o
}

fn starts(segments: &[videovector::Segment]) -> Vec<f64> {
    segments.iter().map(|s| s.start).collect()
}

#[test]
fn every_video_mode_tiles_the_timeline_with_a_keyframe_and_thumbnail_per_segment() {
    for name in ["bikes.mp4", "slideshow.mp4", "fade.mp4", "packed_bframes.avi", "carphone_pristine.mp4"] {
        let duration = truth_of(name)["frame_count"].as_f64().unwrap() / truth_of(name)["fps"].as_f64().unwrap();
        for (mode, step) in [
            (VideoSegmentation::Smart, None),
            (VideoSegmentation::ContentAware, None),
            (VideoSegmentation::Fixed, Some(3.0)),
        ] {
            let what = format!("{name} {mode:?}");
            let (_dir, engine) = temp_engine();
            let r = engine.videos().ingest(fixture(name), &opts(mode, step)).expect(&what);
            assert_eq!(r.status, Status::Completed, "{what}: {:?}", r.error);
            assert_eq!(r.media_type, Some(MediaType::Video));
            let d = r.duration.unwrap();
            assert!((d - duration).abs() < 1e-6, "{what}: duration {d} vs {duration}");
            assert_tiles(&r.segments, d, &what);
            for s in &r.segments {
                assert_eq!(s.kind, SegmentKind::Video);
                assert_eq!(s.segmentation_type, mode.as_str());
                let k = s.keyframe_time.unwrap();
                assert!(k >= s.start && k < s.end, "{what}: keyframe {k} outside {}..{}", s.start, s.end);
                let thumb = image::open(s.thumbnail_path.as_ref().unwrap()).expect("thumbnail decodes");
                assert!(thumb.width().max(thumb.height()) <= 480 && thumb.width() >= 100, "{what}: thumbnail size");
            }
            let media = engine.videos().retrieve(r.video_id.as_deref().unwrap()).unwrap();
            let gif = image::open(media.gif_path.as_ref().expect("preview gif")).expect("gif decodes");
            assert!(gif.width() <= 160);
        }
    }
}

#[test]
fn modes_cut_where_they_should() {
    let (_dir, engine) = temp_engine();
    let slideshow = fixture("slideshow.mp4");
    let content = engine.videos().ingest(&slideshow, &opts(VideoSegmentation::ContentAware, None)).unwrap();
    assert_eq!(starts(&content.segments), vec![0.0, 8.0, 16.0, 24.0, 32.0]);

    let (_dir, engine) = temp_engine();
    let smart = engine.videos().ingest(&slideshow, &IngestOptions::default()).unwrap();
    assert_eq!(starts(&smart.segments), vec![0.0, 8.0, 16.0, 24.0, 32.0], "8 s shots are within smart's 3-30 s range");

    let (_dir, engine) = temp_engine();
    let bikes = fixture("bikes.mp4");
    let fixed = engine.videos().ingest(&bikes, &opts(VideoSegmentation::Fixed, Some(3.0))).unwrap();
    assert_eq!(starts(&fixed.segments), vec![0.0, 3.0, 6.0, 9.0]);
    assert!((fixed.segments[3].end - 10.0).abs() < 1e-9, "the last fixed span is shorter, not empty");

    // Smart on bikes: shots of 1.2-2.4 s merge across their weakest cuts into spans of 3 s or more,
    // and every boundary is still a true cut.
    let (_dir, engine) = temp_engine();
    let smart = engine.videos().ingest(&bikes, &IngestOptions::default()).unwrap();
    let cuts = f64s(&truth_of("bikes.mp4")["cuts"]);
    for s in &smart.segments[1..] {
        assert!(cuts.iter().any(|c| (c - s.start).abs() < 0.041), "smart boundary {} is not a shot cut", s.start);
    }
    assert!(smart.segments.iter().all(|s| s.end - s.start >= 3.0 - 1e-9), "{:?}", starts(&smart.segments));
}

#[test]
fn ingest_cuts_with_transnet_by_default_and_with_the_rules_when_it_is_off() {
    // busy_cuts.mp4: five grainy fast pans, cut every 2 s. The engine's default finds TransNetV2 in
    // the repository's models/ (scripts/fetch_models.sh); the rules find one cut of four.
    let busy = fixture("busy_cuts.mp4");
    let dir = tempfile::tempdir().unwrap();
    let options = videovector::EngineOptions::new()
        .visual_model(videovector::ModelChoice::Off)
        .asr_model(videovector::ModelChoice::Off);
    let engine = videovector::Engine::open_with(dir.path().join("data"), options).unwrap();
    let r = engine.videos().ingest(&busy, &opts(VideoSegmentation::ContentAware, None)).unwrap();
    assert_eq!(starts(&r.segments), vec![0.0, 2.0, 4.0, 6.0, 8.0]);

    let (_dir, engine) = temp_engine();
    let r = engine.videos().ingest(&busy, &opts(VideoSegmentation::ContentAware, None)).unwrap();
    assert!(r.segments.len() < 5, "the rules alone: {:?}", starts(&r.segments));
}

#[test]
fn keyframes_avoid_black_frames_of_a_fade() {
    let (_dir, engine) = temp_engine();
    let r = engine.videos().ingest(fixture("fade.mp4"), &opts(VideoSegmentation::ContentAware, None)).unwrap();
    assert_eq!(r.segments.len(), 3);
    for s in &r.segments {
        let thumb = image::open(s.thumbnail_path.as_ref().unwrap()).unwrap().to_luma8();
        let mean = thumb.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / f64::from(thumb.width() * thumb.height());
        assert!(
            mean > 40.0,
            "segment {}..{} keyframe at {:?} is dark (mean luma {mean:.0})",
            s.start,
            s.end,
            s.keyframe_time
        );
    }
}

/// Speech spans of a file from ground truth.
fn speech(name: &str) -> Vec<(f64, f64)> {
    truth_of(name)["speech"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap()))
        .collect()
}

#[test]
fn audio_segments_never_cut_through_speech() {
    let (_dir, engine) = temp_engine();
    let wav = engine.videos().ingest(fixture("speech.wav"), &IngestOptions::default()).unwrap();
    assert_eq!(wav.media_type, Some(MediaType::Audio));
    assert!(wav.audio_segments.is_empty(), "audio files list their audio segments as `segments`");
    assert_tiles(&wav.segments, wav.duration.unwrap(), "speech.wav");
    assert!((wav.duration.unwrap() - 13.7).abs() < 0.01);
    let sentences = speech("speech.wav");
    for (start, end) in &sentences {
        let holder = wav.segments.iter().filter(|s| s.start <= *start + 0.02 && s.end >= *end - 0.02).count();
        assert_eq!(holder, 1, "sentence {start}..{end} is split: {:?}", starts(&wav.segments));
    }
    assert_eq!(wav.segments.len(), sentences.len(), "one segment per sentence: {:?}", starts(&wav.segments));

    let mp3 = engine.videos().ingest(fixture("speech.mp3"), &IngestOptions::default()).unwrap();
    assert_eq!(mp3.segments.len(), sentences.len(), "MP3 of the same speech cuts the same way");

    let show = engine.videos().ingest(fixture("slideshow.mp4"), &IngestOptions::default()).unwrap();
    assert_tiles(&show.audio_segments, show.duration.unwrap(), "slideshow audio");
    for (start, end) in speech("slideshow.mp4") {
        let inside = show.audio_segments.iter().any(|s| s.start <= start + 0.3 && s.end >= end - 0.3);
        assert!(inside, "utterance {start}..{end} is split: {:?}", starts(&show.audio_segments));
    }

    let mut fixed = IngestOptions::default();
    fixed.segmentation.audio_segmentation_type = AudioSegmentation::Fixed;
    fixed.segmentation.audio_segment_duration = Some(5.0);
    let (_dir, engine) = temp_engine();
    let r = engine.videos().ingest(fixture("speech.wav"), &fixed).unwrap();
    assert_eq!(starts(&r.segments), vec![0.0, 5.0, 10.0]);
}

#[test]
fn silence_tone_and_noise_are_one_segment_each() {
    let (_dir, engine) = temp_engine();
    for name in ["silence.wav", "tone.wav", "noise.wav"] {
        let r = engine.videos().ingest(fixture(name), &IngestOptions::default()).unwrap();
        assert_eq!(r.status, Status::Completed, "{name}");
        assert_eq!(r.segments.len(), 1, "{name}: no pauses to cut at");
        assert!((r.duration.unwrap() - 4.0).abs() < 0.01, "{name}");
    }
}

#[test]
fn images_are_one_instant_segment_with_a_thumbnail() {
    let (_dir, engine) = temp_engine();
    for name in ["image.png", "image.jpg", "rocket.jpg"] {
        let r = engine.videos().ingest(fixture(name), &IngestOptions::default()).unwrap();
        assert_eq!(r.media_type, Some(MediaType::Image), "{name}");
        assert_eq!(r.duration, Some(0.0));
        assert_eq!(r.segments.len(), 1);
        assert_eq!((r.segments[0].start_us, r.segments[0].end_us), (0, 0));
        let thumb = image::open(r.segments[0].thumbnail_path.as_ref().unwrap()).unwrap();
        let (w, h) = image::image_dimensions(fixture(name)).unwrap();
        let longer = thumb.width().max(thumb.height());
        let expected = w.max(h).min(480);
        assert!(
            longer.abs_diff(expected) <= 1,
            "{name}: thumbnail {longer} px, expected {expected} (at most 480, never upscaled, even)"
        );
    }
}

#[test]
fn probe_reads_streams_and_parameters() {
    let info = videovector::internals::media::probe(&fixture("bigbuckbunny.mp4")).unwrap();
    let v = info.video.as_ref().unwrap();
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", 1280, 720));
    let a = info.audio.as_ref().unwrap();
    assert_eq!((a.codec.as_str(), a.channels), ("aac", 6));
    let info = videovector::internals::media::probe(&fixture("carphone_pristine.mp4")).unwrap();
    assert!((info.video.unwrap().frame_rate - 29.97).abs() < 0.01);
    let info = videovector::internals::media::probe(&fixture("speech.mp3")).unwrap();
    assert_eq!(info.media_type, MediaType::Audio);
    assert_eq!(info.audio.unwrap().codec, "mp3");
}

#[test]
fn the_same_file_is_ingested_once_per_index() {
    let (_dir, engine) = temp_engine();
    let news = engine.indexes().create("news", None).unwrap();
    let o = IngestOptions::new().index("news");
    let first = engine.videos().ingest(fixture("bikes.mp4"), &o).unwrap();
    let again = engine.videos().ingest(fixture("bikes.mp4"), &o).unwrap();
    assert_eq!(first.video_id, again.video_id);
    assert!(!first.deduplicated && again.deduplicated);
    assert_eq!(first.segments, again.segments);
    assert_eq!(engine.indexes().retrieve(&news.index_id).unwrap().video_count, 1);
    // A copy of the file under another name is the same content.
    let copy = _dir.path().join("copy.mp4");
    std::fs::copy(fixture("bikes.mp4"), &copy).unwrap();
    assert_eq!(engine.videos().ingest(&copy, &o).unwrap().video_id, first.video_id);
    // Another index, or the playground, holds its own copy.
    engine.indexes().create("sport", None).unwrap();
    let sport = engine.videos().ingest(fixture("bikes.mp4"), &IngestOptions::new().index("sport")).unwrap();
    let playground = engine.videos().ingest(fixture("bikes.mp4"), &IngestOptions::default()).unwrap();
    assert_ne!(sport.video_id, first.video_id);
    assert_ne!(playground.video_id, first.video_id);
    assert_eq!(media_count(&engine), 3);
    assert_eq!(engine.videos().list_playground(&PageRequest::default()).unwrap().data.len(), 1);
}

#[test]
fn idempotency_keys_return_the_first_result_and_refuse_other_content() {
    let (_dir, engine) = temp_engine();
    let keyed = IngestOptions::new().idempotency_key("upload-42");
    let first = engine.videos().ingest(fixture("cuts.mp4"), &keyed).unwrap();
    let retry = engine.videos().ingest(fixture("cuts.mp4"), &keyed).unwrap();
    assert_eq!(first.video_id, retry.video_id);
    assert!(retry.deduplicated);
    let err = engine.videos().ingest(fixture("bikes.mp4"), &keyed).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(err.code(), "idempotency_conflict", "{err}");
    assert!(err.to_string().contains("upload-42") && err.to_string().contains("bikes.mp4"), "{err}");
    assert_eq!(media_count(&engine), 1);
}

#[test]
fn segments_paginate_and_deletes_remove_rows_and_files() {
    let (_dir, engine) = temp_engine();
    let r = engine.videos().ingest(fixture("bikes.mp4"), &opts(VideoSegmentation::Fixed, Some(1.0))).unwrap();
    let id = r.video_id.clone().unwrap();
    assert_eq!(r.segments.len(), 10);
    let mut query = SegmentQuery::new().page(PageRequest::first(4));
    let mut seen = Vec::new();
    loop {
        let page = engine.videos().list_segments(&id, &query).unwrap();
        assert!(page.data.len() <= 4);
        seen.extend(page.data.iter().map(|s| s.index));
        match page.next_cursor {
            Some(c) => query.page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (0..10).collect::<Vec<u32>>());

    let thumbs: Vec<String> = r.segments.iter().map(|s| s.thumbnail_path.clone().unwrap()).collect();
    engine.videos().delete(&id).unwrap();
    assert!(thumbs.iter().all(|t| !std::path::Path::new(t).exists()), "thumbnails are removed with the media");
    assert_eq!(engine.videos().retrieve(&id).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(engine.videos().delete(&id).unwrap_err().kind(), ErrorKind::NotFound);

    engine.indexes().create("gone", None).unwrap();
    let r = engine.videos().ingest(fixture("cuts.mp4"), &IngestOptions::new().index("gone")).unwrap();
    engine.indexes().delete("gone").unwrap();
    assert_eq!(engine.videos().retrieve(r.video_id.as_deref().unwrap()).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(media_count(&engine) == 0);
}

#[test]
fn batch_lookups_report_unknown_ids() {
    let (_dir, engine) = temp_engine();
    let r = engine.videos().ingest(fixture("cuts.mp4"), &IngestOptions::default()).unwrap();
    let id = r.video_id.unwrap();
    let batch = engine.videos().batch_status(&[id.to_string(), "vid_doesnotexist".into()]).unwrap();
    assert_eq!(batch.data.len(), 1);
    assert_eq!(batch.data[0].status, Status::Completed);
    assert_eq!(batch.not_found, vec!["vid_doesnotexist".to_string()]);
}

#[test]
fn the_fast_analysis_path_sees_the_same_picture_as_swscale() {
    use videovector::internals::media::{decode, DecodeOptions, Flow, FrameSink, VideoFrame};
    struct First(Option<(u32, u32, Vec<u8>)>);
    impl FrameSink for First {
        fn video_frame(&mut self, f: &VideoFrame<'_>) -> videovector::Result<Flow> {
            self.0 = Some((f.width, f.height, f.rgb.to_vec()));
            Ok(Flow::Stop)
        }
    }
    for name in ["bikes.mp4", "slideshow.mp4", "bigbuckbunny.mp4"] {
        let mut frames = Vec::new();
        for fast in [true, false] {
            let mut sink = First(None);
            decode(&fixture(name), &DecodeOptions { max_side: 160, video: true, audio: false, fast }, &mut sink)
                .unwrap();
            frames.push(sink.0.unwrap());
        }
        let ((w1, h1, a), (w2, h2, b)) = (&frames[0], &frames[1]);
        assert_eq!((w1, h1), (w2, h2), "{name}: same size either way");
        let mad = a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len() as f64;
        assert!(mad < 6.0, "{name}: box-averaged YUV and swscale RGB differ by {mad:.1} on average");
    }
}

#[test]
fn thumbnails_follow_the_display_rotation() {
    let info = videovector::internals::media::probe(&fixture("rotated.mp4")).unwrap();
    let v = info.video.unwrap();
    assert_eq!((v.width, v.height, v.rotation), (320, 240, 90), "stored landscape, shown turned 90 degrees clockwise");
    let (_dir, engine) = temp_engine();
    let r = engine.videos().ingest(fixture("rotated.mp4"), &IngestOptions::default()).unwrap();
    let thumb = image::open(r.segments[0].thumbnail_path.as_ref().unwrap()).unwrap();
    assert!(thumb.height() > thumb.width(), "thumbnail is upright: {}x{}", thumb.width(), thumb.height());
}
