//! Stage 1, analyse: probe a file and decode it once at the analysis size, measuring every video
//! frame for shot detection (on a thread of its own) and the loudness of every 10 ms of audio.
//!
//! Memory is bounded by the analysis size, not by the file: a few numbers per frame and per 10 ms.

use std::path::Path;

use crate::error::{Error, Result};
use crate::jobs::JobContext;
use crate::media::{self, DecodeOptions, Flow, FrameSink, MediaInfo, MediaType, VideoFrame};
use crate::ml::transnet::TransNet;
use crate::segment::{AudioEnergy, Cut, FrameStats, ShotConfig, ShotDetector};
use crate::types::JobStage;

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
    ctx: &'a JobContext,
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
        if frame.index.is_multiple_of(50) && self.expected_frames > 0.0 {
            self.ctx.progress(JobStage::Analysing, (frame.index as f64 / self.expected_frames).min(1.0) as f32);
        }
        self.ctx.check()?;
        Ok(Flow::Continue)
    }

    fn audio_samples(&mut self, samples: &[f32]) -> Result<Flow> {
        self.energy.push(samples);
        self.ctx.check()?;
        Ok(Flow::Continue)
    }
}

/// Probe and decode `path` once: shot measurements for video (TransNetV2's scores too when
/// `model` is given), loudness for audio. Stops with `Cancelled` between frames once `ctx` is
/// stopped.
pub(crate) fn analyse(path: &Path, shots: &ShotConfig, model: Option<&TransNet>, ctx: &JobContext) -> Result<Analysis> {
    analyse_streams(path, shots, model, true, ctx)
}

/// [`analyse`] of the audio alone: its loudness, with no video decoded and no shots (for
/// transcribing a file, where video frames would only cost time). `duration_us` is the audio's.
pub(crate) fn analyse_audio(path: &Path, ctx: &JobContext) -> Result<Analysis> {
    analyse_streams(path, &ShotConfig::default(), None, false, ctx)
}

fn analyse_streams(
    path: &Path,
    shots: &ShotConfig,
    model: Option<&TransNet>,
    video: bool,
    ctx: &JobContext,
) -> Result<Analysis> {
    let mut info = media::probe(path)?;
    if !video && info.audio.is_some() {
        info.video = None;
    }
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
    let (summary, detected, energy) = std::thread::scope(|scope| {
        let detector = scope.spawn(|| {
            let mut shots = ShotDetector::with_model(shots.clone(), model);
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
        let mut sink =
            AnalysisSink { frames: info.video.as_ref().map(|_| tx), energy: AudioEnergy::new(), expected_frames, ctx };
        let summary = media::decode(path, &opts, &mut sink);
        drop(sink.frames.take());
        let detected = detector.join();
        (summary, detected, sink.energy)
    });
    // A panic of the detector fails this file (as a bug), not the caller's thread.
    let detected = detected.map_err(|_| Error::Internal(format!("shot detection panicked on {}", path.display())))?;
    let summary = summary?;
    let (cuts, frames) = detected?;
    let audio_db = energy.finish();
    let duration_us =
        if info.video.is_some() { summary.video_end_us } else { media::samples_to_us(summary.audio_samples) };
    if duration_us <= 0 {
        return Err(Error::media(path, "no audio samples or video frames could be decoded"));
    }
    Ok(Analysis { info, duration_us, frames, cuts, audio_db, decode_errors: summary.decode_errors })
}
