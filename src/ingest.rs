//! The ingest pipeline for one file: analyse (one decode pass), segment, extract keyframes and a
//! preview (a second pass that converts only the chosen frames), then hand records to the catalog.
//!
//! Memory is bounded by the analysis size, not by the file: the first pass keeps a few numbers per
//! frame and per 10 ms of audio, the second keeps only the frames of the preview GIF.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{codecs::gif::GifEncoder, codecs::jpeg::JpegEncoder, Delay, Frame, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::media::{self, DecodeOptions, Flow, FrameSink, MediaInfo, MediaType, VideoFrame, ANALYSIS_SAMPLE_RATE};
use crate::segment::{
    audio_spans, choose_keyframe, validate_tiling, video_spans, AudioEnergy, Cut, FrameStats, SegmentationConfig,
    ShotConfig, ShotDetector, Span,
};
use crate::store::{write_atomic, Layout, NewSegment, SegmentKind};

/// Options of one ingest call. Defaults are the API's: smart video segmentation, content-aware audio.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestOptions {
    /// Index id or name; `None` ingests playground media (no index).
    pub index: Option<String>,
    /// Title to store; default: the file name.
    pub title: Option<String>,
    /// A retry with the same key returns the same media item instead of ingesting again.
    pub idempotency_key: Option<String>,
    /// The API's `enable_transcription`: `None` (default) transcribes when a speech model is
    /// available, `Some(true)` requires one, `Some(false)` turns transcription off.
    pub enable_transcription: Option<bool>,
    pub segmentation: SegmentationConfig,
    pub output: OutputConfig,
}

/// Sizes of what ingest writes to disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputConfig {
    /// Longer side of keyframe thumbnails in pixels. Default 480.
    pub thumbnail_size: u32,
    /// JPEG quality of thumbnails, 1-100. Default 85.
    pub thumbnail_quality: u8,
    /// Frames in the preview GIF; 0 turns previews off. Default 24.
    pub gif_frames: u32,
    /// Longer side of preview GIF frames in pixels. Default 160.
    pub gif_size: u32,
    /// Display time of each GIF frame in milliseconds. Default 250.
    pub gif_frame_ms: u32,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { thumbnail_size: 480, thumbnail_quality: 85, gif_frames: 24, gif_size: 160, gif_frame_ms: 250 }
    }
}

/// Longer side of frames used for analysis (shot detection, keyframe quality).
pub const ANALYSIS_SIZE: u32 = 256;

/// What one decode pass measured on a file.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub info: MediaInfo,
    /// Exact timeline length in microseconds: end of the last video frame, else end of the audio.
    pub duration_us: i64,
    pub frames: Vec<FrameStats>,
    pub cuts: Vec<Cut>,
    /// Audio loudness in dBFS per 10 ms.
    pub audio_db: Vec<f32>,
    /// Packets that could not be read or decoded (the rest of the file was used).
    pub decode_errors: u64,
}

/// Progress reports of a long ingest.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Share (0-1) of the current file's analysis pass done.
    Analysing(f32),
    /// Writing keyframes and the preview.
    Extracting,
    /// Embedding keyframes.
    Embedding,
    /// Transcribing speech.
    Transcribing,
}

/// A decoded frame on its way to the detector thread.
struct OwnedFrame {
    index: u64,
    time_us: i64,
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

/// Feeds the shot detector, which runs on a thread of its own so that measuring one frame
/// overlaps with decoding the next.
struct AnalysisSink<'a> {
    frames: Option<std::sync::mpsc::SyncSender<OwnedFrame>>,
    energy: AudioEnergy,
    expected_frames: f64,
    on_progress: &'a mut dyn FnMut(Progress),
}

impl FrameSink for AnalysisSink<'_> {
    fn video_frame(&mut self, frame: &VideoFrame<'_>) -> Result<Flow> {
        if let Some(tx) = &self.frames {
            let owned = OwnedFrame {
                index: frame.index,
                time_us: frame.time_us,
                width: frame.width,
                height: frame.height,
                rgb: frame.rgb.to_vec(),
            };
            if tx.send(owned).is_err() {
                return Ok(Flow::Stop);
            }
        }
        if frame.index % 50 == 0 && self.expected_frames > 0.0 {
            (self.on_progress)(Progress::Analysing((frame.index as f64 / self.expected_frames).min(1.0) as f32));
        }
        Ok(Flow::Continue)
    }

    fn audio_samples(&mut self, samples: &[f32]) -> Result<Flow> {
        self.energy.push(samples);
        Ok(Flow::Continue)
    }
}

/// Probe and decode `path` once: shot measurements for video, loudness for audio.
pub fn analyse(path: &Path, shots: &ShotConfig, on_progress: &mut dyn FnMut(Progress)) -> Result<Analysis> {
    let info = media::probe(path)?;
    if info.media_type == MediaType::Image {
        return Ok(Analysis {
            info,
            duration_us: 0,
            frames: Vec::new(),
            cuts: Vec::new(),
            audio_db: Vec::new(),
            decode_errors: 0,
        });
    }
    let expected_frames = match (&info.video, info.duration) {
        (Some(v), _) if v.frame_count.is_some() => v.frame_count.unwrap_or(0) as f64,
        (Some(v), Some(d)) => v.frame_rate * d,
        _ => 0.0,
    };
    let opts =
        DecodeOptions { max_side: ANALYSIS_SIZE, video: info.video.is_some(), audio: info.audio.is_some(), fast: true };
    let (tx, rx) = std::sync::mpsc::sync_channel::<OwnedFrame>(16);
    let (summary, (cuts, frames), energy) = std::thread::scope(|scope| {
        let detector = scope.spawn(|| {
            let mut shots = ShotDetector::new(shots.clone());
            for f in rx {
                shots.push(&VideoFrame {
                    index: f.index,
                    time_us: f.time_us,
                    width: f.width,
                    height: f.height,
                    rgb: &f.rgb,
                });
            }
            shots.finish()
        });
        let mut sink = AnalysisSink {
            frames: info.video.as_ref().map(|_| tx),
            energy: AudioEnergy::new(),
            expected_frames,
            on_progress,
        };
        let summary = media::decode(path, &opts, &mut sink);
        drop(sink.frames.take());
        let detected = detector.join().expect("shot detector thread panicked");
        (summary, detected, sink.energy)
    });
    let summary = summary?;
    let audio_db = energy.finish();
    let duration_us = if info.video.is_some() {
        summary.video_end_us
    } else {
        (summary.audio_samples as i64 * 1_000_000) / i64::from(ANALYSIS_SAMPLE_RATE)
    };
    if duration_us <= 0 {
        return Err(Error::media(path, "no audio samples or video frames could be decoded"));
    }
    Ok(Analysis { info, duration_us, frames, cuts, audio_db, decode_errors: summary.decode_errors })
}

/// Segments planned for a file, before they are written.
#[derive(Debug, Clone)]
pub struct Plan {
    pub video: Vec<(Span, Option<usize>)>,
    pub audio: Vec<Span>,
}

/// Cut the analysed timeline into video spans (each with its keyframe's frame index) and audio spans.
pub fn plan(analysis: &Analysis, config: &SegmentationConfig) -> Result<Plan> {
    let d = analysis.duration_us;
    let video = match analysis.info.media_type {
        MediaType::Image => vec![(Span::new(0, 0), None)],
        MediaType::Audio => Vec::new(),
        MediaType::Video => {
            let times: Vec<i64> = analysis.frames.iter().map(|f| f.time_us).collect();
            let spans = video_spans(config, &analysis.cuts, &times, &analysis.audio_db, d);
            spans
                .into_iter()
                .map(|s| {
                    let first = times.partition_point(|&t| t < s.start_us);
                    let end = times.partition_point(|&t| t < s.end_us).max(first + 1);
                    (s, Some(choose_keyframe(&analysis.frames, first, end)))
                })
                .collect()
        }
    };
    let audio = if analysis.info.audio.is_some() { audio_spans(config, &analysis.audio_db, d) } else { Vec::new() };
    let video_only: Vec<Span> = video.iter().map(|(s, _)| *s).collect();
    if !video_only.is_empty() {
        validate_tiling(&video_only, d)?;
    }
    if !audio.is_empty() {
        validate_tiling(&audio, d)?;
    }
    Ok(Plan { video, audio })
}

/// What the second pass wants from a frame.
enum Want {
    /// The keyframe of video segment `i`: written to disk as soon as it is decoded.
    Thumbnail(usize),
    /// Frame `i` of the preview GIF: kept (small) until the end.
    Gif(usize),
}

struct ExtractSink<'a> {
    targets: BTreeMap<u64, Vec<Want>>,
    rotation: u32,
    /// Where each segment's thumbnail goes.
    thumbnail_files: Vec<PathBuf>,
    written: Vec<bool>,
    gif: Vec<Option<RgbImage>>,
    output: &'a OutputConfig,
}

impl FrameSink for ExtractSink<'_> {
    fn wants_frame(&mut self, index: u64, _time_us: i64) -> bool {
        self.targets.contains_key(&index)
    }

    fn video_frame(&mut self, frame: &VideoFrame<'_>) -> Result<Flow> {
        let Some(wants) = self.targets.remove(&frame.index) else {
            return Ok(Flow::Continue);
        };
        let img = RgbImage::from_raw(frame.width, frame.height, frame.rgb.to_vec())
            .expect("decoder delivers width*height*3 bytes");
        let img = rotate(img, self.rotation);
        for want in wants {
            match want {
                Want::Thumbnail(i) => {
                    write_atomic(&self.thumbnail_files[i], &encode_jpeg(&img, self.output.thumbnail_quality)?)?;
                    self.written[i] = true;
                }
                Want::Gif(i) => self.gif[i] = Some(resize_within(&img, self.output.gif_size)),
            }
        }
        Ok(if self.targets.is_empty() { Flow::Stop } else { Flow::Continue })
    }
}

fn rotate(img: RgbImage, degrees: u32) -> RgbImage {
    match degrees {
        90 => image::imageops::rotate90(&img),
        180 => image::imageops::rotate180(&img),
        270 => image::imageops::rotate270(&img),
        _ => img,
    }
}

fn resize_within(img: &RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = media::fit_within(img.width(), img.height(), max_side);
    image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
}

/// Write thumbnails (one per video segment) and the preview GIF; return the segment records.
///
/// Only the preview's small frames are held in memory; each thumbnail is written as soon as its
/// frame is decoded.
pub fn extract(
    path: &Path,
    layout: &Layout,
    video_id: &str,
    analysis: &Analysis,
    plan: &Plan,
    config: &SegmentationConfig,
    output: &OutputConfig,
) -> Result<(Vec<NewSegment>, Option<String>)> {
    let dir = layout.thumbnails_dir(video_id);
    let _ = std::fs::remove_dir_all(&dir);
    let method = config.video_segmentation_type.as_str();
    let mut segments: Vec<NewSegment> = plan
        .video
        .iter()
        .map(|(span, key)| NewSegment {
            segment_id: crate::ids::new("seg"),
            kind: SegmentKind::Video,
            start_us: span.start_us,
            end_us: span.end_us,
            segmentation_type: method.to_string(),
            keyframe_us: Some(key.map_or(0, |k| analysis.frames[k].time_us)),
            keyframe_frame: Some(key.unwrap_or(0) as u64),
            thumbnail_path: None,
        })
        .collect();
    let files: Vec<PathBuf> = segments.iter().map(|s| layout.thumbnail(video_id, &s.segment_id)).collect();
    let mut written = vec![false; segments.len()];
    let mut gif_frames = Vec::new();
    match analysis.info.media_type {
        MediaType::Image => {
            let img = resize_within(&media::load_image(path)?, output.thumbnail_size);
            write_atomic(&files[0], &encode_jpeg(&img, output.thumbnail_quality)?)?;
            written[0] = true;
        }
        MediaType::Video => {
            let mut targets: BTreeMap<u64, Vec<Want>> = BTreeMap::new();
            for (i, (_, key)) in plan.video.iter().enumerate() {
                if let Some(k) = key {
                    targets.entry(*k as u64).or_default().push(Want::Thumbnail(i));
                }
            }
            let n = analysis.frames.len();
            let gif_count = (output.gif_frames as usize).min(n);
            for g in 0..gif_count {
                let frame = (g * n + n / 2) / gif_count.max(1);
                targets.entry(frame.min(n - 1) as u64).or_default().push(Want::Gif(g));
            }
            let rotation = analysis.info.video.as_ref().map_or(0, |v| v.rotation);
            let mut sink = ExtractSink {
                targets,
                rotation,
                thumbnail_files: files.clone(),
                written,
                gif: vec![None; gif_count],
                output,
            };
            let opts = DecodeOptions { max_side: output.thumbnail_size, video: true, audio: false, fast: false };
            media::decode(path, &opts, &mut sink)?;
            written = sink.written;
            gif_frames = sink.gif.into_iter().flatten().collect();
        }
        MediaType::Audio => {}
    }
    for ((segment, file), done) in segments.iter_mut().zip(files).zip(written) {
        segment.thumbnail_path = done.then(|| file.to_string_lossy().into_owned());
    }
    segments.extend(plan.audio.iter().map(|span| NewSegment {
        segment_id: crate::ids::new("seg"),
        kind: SegmentKind::Audio,
        start_us: span.start_us,
        end_us: span.end_us,
        segmentation_type: config.audio_segmentation_type.as_str().to_string(),
        keyframe_us: None,
        keyframe_frame: None,
        thumbnail_path: None,
    }));
    let gif_path = if gif_frames.is_empty() {
        None
    } else {
        let file = layout.preview_gif(video_id);
        write_atomic(&file, &encode_gif(&gif_frames, output.gif_frame_ms)?)?;
        Some(file.to_string_lossy().into_owned())
    };
    Ok((segments, gif_path))
}

fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, quality.clamp(1, 100))
        .encode_image(img)
        .map_err(|e| Error::media("<thumbnail>", format!("JPEG encoding failed: {e}")))?;
    Ok(buf)
}

fn encode_gif(frames: &[RgbImage], frame_ms: u32) -> Result<Vec<u8>> {
    let mut buf = Cursor::new(Vec::new());
    {
        let mut enc = GifEncoder::new_with_speed(&mut buf, 20);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite).map_err(|e| Error::media("<preview>", e.to_string()))?;
        for f in frames {
            let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            enc.encode_frame(Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(frame_ms, 1)))
                .map_err(|e| Error::media("<preview>", format!("GIF encoding failed: {e}")))?;
        }
    }
    Ok(buf.into_inner())
}
