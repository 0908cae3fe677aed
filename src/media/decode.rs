//! Stream a file's video frames (RGB at a chosen size) and audio (16 kHz mono f32) in one demux pass.
//!
//! Nothing here holds more than one decoded frame: callers that need history keep their own.

use std::path::Path;

use ffmpeg_next as ff;

use super::probe::{codec_context, is_real_video, open_input, rational_to_f64};
use crate::error::{Error, Result};

/// Sample rate of the PCM handed to [`FrameSink::audio_samples`]: what Whisper and the pause detector expect.
pub const ANALYSIS_SAMPLE_RATE: u32 = 16_000;

/// Microseconds spanned by `samples` samples at [`ANALYSIS_SAMPLE_RATE`] (rounded down).
pub fn samples_to_us(samples: u64) -> i64 {
    (samples as i64 * 1_000_000) / i64::from(ANALYSIS_SAMPLE_RATE)
}

/// Frame duration assumed when a stream declares no frame rate at all (25 fps).
const FALLBACK_FRAME_US: i64 = 40_000;

/// Corrupt packets tolerated before a file is declared undecodable, as a share of all packets read.
const MAX_ERROR_SHARE: f64 = 0.5;

/// What to decode and at which size.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Longer side of delivered video frames in pixels; frames are never upscaled. Default 256.
    pub max_side: u32,
    /// Decode the video stream. Default true.
    pub video: bool,
    /// Decode the audio stream. Default true.
    pub audio: bool,
    /// Trade picture quality for speed where it does not change what analysis sees: skip the
    /// H.264/HEVC loop filter and allow non-bit-exact shortcuts. Never for thumbnails. Default false.
    pub fast: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { max_side: 256, video: true, audio: true, fast: false }
    }
}

/// One decoded video frame, packed RGB24 (`rgb.len() == width * height * 3`).
#[derive(Debug)]
pub struct VideoFrame<'a> {
    /// Position of the frame in decode-output order, from 0.
    pub index: u64,
    /// Presentation time in microseconds from the start of the stream; strictly increasing.
    pub time_us: i64,
    pub width: u32,
    pub height: u32,
    pub rgb: &'a [u8],
}

/// Whether decoding should go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Receives what [`decode`] produces, in stream order.
pub trait FrameSink {
    /// Whether frame `index` should be converted and delivered; frames not wanted skip the scaler.
    fn wants_frame(&mut self, _index: u64, _time_us: i64) -> bool {
        true
    }
    fn video_frame(&mut self, frame: &VideoFrame<'_>) -> Result<Flow>;
    fn audio_samples(&mut self, _samples: &[f32]) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

/// What a decode pass saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodeSummary {
    /// Video frames decoded (delivered or not).
    pub frames: u64,
    /// Duration of one frame in microseconds, from the stream's frame rate.
    pub frame_duration_us: i64,
    /// End of the last video frame in microseconds (its time plus one frame duration), 0 without video.
    pub video_end_us: i64,
    /// 16 kHz mono samples delivered.
    pub audio_samples: u64,
    /// Packets the decoders rejected.
    pub decode_errors: u64,
}

/// The whole audio of `path` as 16 kHz mono samples (no video decoded).
pub fn decode_audio(path: &Path) -> Result<Vec<f32>> {
    struct Samples(Vec<f32>);
    impl FrameSink for Samples {
        fn video_frame(&mut self, _frame: &VideoFrame<'_>) -> Result<Flow> {
            Ok(Flow::Continue)
        }
        fn audio_samples(&mut self, samples: &[f32]) -> Result<Flow> {
            self.0.extend_from_slice(samples);
            Ok(Flow::Continue)
        }
    }
    let mut sink = Samples(Vec::new());
    decode(path, &DecodeOptions { video: false, ..Default::default() }, &mut sink)?;
    Ok(sink.0)
}

/// Decode `path` once, feeding `sink`. Stops early when the sink returns [`Flow::Stop`].
pub fn decode(path: &Path, opts: &DecodeOptions, sink: &mut dyn FrameSink) -> Result<DecodeSummary> {
    super::init();
    let mut input = open_input(path)?;
    let mut video = if opts.video { VideoDecoder::open(path, &input, opts)? } else { None };
    let mut audio = if opts.audio { AudioDecoder::open(path, &input)? } else { None };
    if video.is_none() && audio.is_none() {
        return Err(Error::media(path, "no video or audio stream to decode"));
    }
    let mut summary = DecodeSummary::default();
    let mut packets = 0u64;
    let mut flow = Flow::Continue;
    while flow == Flow::Continue {
        // A fresh packet each time: av_read_frame does not release what a packet already holds,
        // so reusing one leaks every packet's payload (about 1 KB per frame).
        let mut packet = ff::Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(ff::Error::InvalidData) => {
                summary.decode_errors += 1;
                continue;
            }
            Err(e) => return Err(Error::media(path, format!("read error after {packets} packets: {e}"))),
        }
        packets += 1;
        let index = packet.stream();
        if let Some(v) = video.as_mut().filter(|v| v.stream == index) {
            if v.decoder.send_packet(&packet).is_err() {
                summary.decode_errors += 1;
                continue;
            }
            flow = v.drain(sink)?;
        } else if let Some(a) = audio.as_mut().filter(|a| a.stream == index) {
            if a.decoder.send_packet(&packet).is_err() {
                summary.decode_errors += 1;
                continue;
            }
            flow = a.drain(path, sink)?;
        }
    }
    if flow == Flow::Continue {
        if let Some(v) = video.as_mut() {
            let _ = v.decoder.send_eof();
            flow = v.drain(sink)?;
        }
    }
    if flow == Flow::Continue {
        if let Some(a) = audio.as_mut() {
            let _ = a.decoder.send_eof();
            a.drain(path, sink)?;
            a.flush(path, sink)?;
        }
    }
    if packets == 0 || summary.decode_errors as f64 > MAX_ERROR_SHARE * packets.max(1) as f64 {
        return Err(Error::media(
            path,
            format!("corrupt: {} of {} packets could not be read or decoded", summary.decode_errors, packets),
        ));
    }
    if let Some(v) = &video {
        summary.frames = v.next_index;
        summary.frame_duration_us = v.frame_us;
        summary.video_end_us = v.last_us.map_or(0, |t| t + v.frame_us);
        if v.next_index == 0 && flow == Flow::Continue {
            return Err(Error::media(path, "the video stream has no decodable frames"));
        }
    }
    if let Some(a) = &audio {
        summary.audio_samples = a.samples;
    }
    Ok(summary)
}

struct VideoDecoder {
    stream: usize,
    decoder: ff::decoder::Video,
    time_base: ff::Rational,
    start_pts: i64,
    frame_us: i64,
    max_side: u32,
    fast: bool,
    scaler: Option<(ff::software::scaling::Context, (u32, u32, ff::format::Pixel))>,
    decoded: ff::frame::Video,
    rgb: ff::frame::Video,
    packed: Vec<u8>,
    next_index: u64,
    last_us: Option<i64>,
}

impl VideoDecoder {
    fn open(path: &Path, input: &ff::format::context::Input, opts: &DecodeOptions) -> Result<Option<Self>> {
        let best = input.streams().best(ff::media::Type::Video).filter(is_real_video);
        let Some(stream) = best.or_else(|| input.streams().find(is_real_video)) else {
            return Ok(None);
        };
        let mut ctx = codec_context(path, &stream, "video")?;
        // Frame threads on every core: decoding runs beside the analysis on the calling thread.
        ctx.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Frame,
            ..Default::default()
        });
        if opts.fast {
            // SAFETY: plain field writes on a codec context that is owned here and not opened yet.
            unsafe {
                let raw = ctx.as_mut_ptr();
                (*raw).skip_loop_filter = ff::ffi::AVDiscard::AVDISCARD_ALL;
                (*raw).flags2 |= ff::ffi::AV_CODEC_FLAG2_FAST;
            }
        }
        let decoder =
            ctx.decoder().video().map_err(|e| Error::media(path, format!("cannot open video decoder: {e}")))?;
        let rate = rational_to_f64(stream.avg_frame_rate()).or_else(|| rational_to_f64(stream.rate()));
        let frame_us = rate.filter(|r| *r > 0.0 && *r < 1000.0).map_or(FALLBACK_FRAME_US, |r| (1e6 / r).round() as i64);
        let start = stream.start_time();
        Ok(Some(VideoDecoder {
            stream: stream.index(),
            decoder,
            time_base: stream.time_base(),
            start_pts: if start == ff::ffi::AV_NOPTS_VALUE { 0 } else { start },
            frame_us,
            max_side: opts.max_side,
            fast: opts.fast,
            scaler: None,
            decoded: ff::frame::Video::empty(),
            rgb: ff::frame::Video::empty(),
            packed: Vec::new(),
            next_index: 0,
            last_us: None,
        }))
    }

    /// Time of the frame just decoded, counted from the first frame (which is at 0, whatever
    /// timestamp the container gave it: packed B-frames in AVI start at 2 frames).
    /// Timestamps missing or going backwards (packed B-frames, broken muxers) fall back to the
    /// previous time plus one frame duration, so times are always strictly increasing.
    fn frame_time(&mut self) -> i64 {
        let ts = self.decoded.timestamp().or(self.decoded.pts());
        if self.last_us.is_none() {
            if let Some(first) = ts {
                self.start_pts = first;
            }
        }
        let stamped = ts.map(|ts| {
            let tb = self.time_base;
            ((ts - self.start_pts) as i128 * 1_000_000 * tb.numerator() as i128 / tb.denominator().max(1) as i128)
                as i64
        });
        match (stamped, self.last_us) {
            (Some(t), None) => t.max(0),
            (Some(t), Some(last)) if t > last => t,
            (_, Some(last)) => last + self.frame_us,
            (None, None) => 0,
        }
    }

    fn drain(&mut self, sink: &mut dyn FrameSink) -> Result<Flow> {
        while self.decoder.receive_frame(&mut self.decoded).is_ok() {
            let time_us = self.frame_time();
            let index = self.next_index;
            self.next_index += 1;
            self.last_us = Some(time_us);
            if !sink.wants_frame(index, time_us) {
                continue;
            }
            let (width, height) = self.convert()?;
            let frame = VideoFrame { index, time_us, width, height, rgb: &self.packed };
            if sink.video_frame(&frame)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    /// Scale the decoded frame to packed RGB24 at the delivered size into `self.packed`.
    fn convert(&mut self) -> Result<(u32, u32)> {
        let (w, h, format) = (self.decoded.width(), self.decoded.height(), self.decoded.format());
        let factor = w.max(h).div_ceil(self.max_side);
        if self.fast && factor >= 2 && matches!(format, ff::format::Pixel::YUV420P | ff::format::Pixel::YUVJ420P) {
            return Ok(self.box_yuv420(factor as usize, format == ff::format::Pixel::YUVJ420P));
        }
        let key = (w, h, format);
        if self.scaler.as_ref().map(|(_, k)| *k) != Some(key) {
            let (sw, sh) = super::fit_within(w, h, self.max_side);
            let flags = if self.fast {
                ff::software::scaling::Flags::FAST_BILINEAR
            } else {
                ff::software::scaling::Flags::AREA
            };
            let ctx = ff::software::scaling::Context::get(format, w, h, ff::format::Pixel::RGB24, sw, sh, flags)
                .map_err(|e| Error::media("<video stream>", format!("cannot create scaler: {e}")))?;
            self.scaler = Some((ctx, key));
            self.rgb = ff::frame::Video::empty();
        }
        let (scaler, _) = self.scaler.as_mut().expect("scaler set above");
        scaler
            .run(&self.decoded, &mut self.rgb)
            .map_err(|e| Error::media("<video stream>", format!("scaling failed: {e}")))?;
        let (w, h) = (self.rgb.width() as usize, self.rgb.height() as usize);
        let stride = self.rgb.stride(0);
        let data = self.rgb.data(0);
        self.packed.clear();
        for row in 0..h {
            self.packed.extend_from_slice(&data[row * stride..row * stride + w * 3]);
        }
        Ok((w as u32, h as u32))
    }

    /// Analysis fast path for 4:2:0 frames: average `factor` x `factor` luma blocks (and the
    /// matching chroma) straight from the decoder's planes, then convert to RGB (BT.601) at the
    /// small size. Several times cheaper than swscale to RGB, and an exact area average.
    fn box_yuv420(&mut self, factor: usize, full_range: bool) -> (u32, u32) {
        // Even, so that chroma blocks align with luma blocks; at most 256 so column sums fit in u16.
        let f = (factor + (factor & 1)).clamp(2, 256);
        let (w, h) = (self.decoded.width() as usize / f, self.decoded.height() as usize / f);
        let planes = [0, 1, 2].map(|p| (self.decoded.stride(p), self.decoded.data(p)));
        // Per plane, the block sums of one row of blocks: columns are summed over the block's rows
        // first (a loop the compiler vectorises), then across each block.
        let mut sums = [vec![0u32; w], vec![0u32; w], vec![0u32; w]];
        let mut columns = vec![0u16; w * f];
        self.packed.clear();
        self.packed.reserve(w * h * 3);
        for by in 0..h {
            for (p, (stride, data)) in planes.iter().enumerate() {
                let bs = if p == 0 { f } else { f / 2 };
                let cols = &mut columns[..w * bs];
                cols.fill(0);
                for r in 0..bs {
                    let row = &data[(by * bs + r) * stride..][..w * bs];
                    for (c, &v) in cols.iter_mut().zip(row) {
                        *c += u16::from(v);
                    }
                }
                for (sum, block) in sums[p].iter_mut().zip(cols.chunks_exact(bs)) {
                    *sum = block.iter().map(|&c| u32::from(c)).sum();
                }
            }
            let (n, nc) = ((f * f) as u32, (f * f / 4) as u32);
            let [ys, us, vs] = &sums;
            // Rounded means by multiply and shift (sums are below 2^24, so 32 bits of reciprocal
            // are plenty): a division per channel and pixel was the hot spot here.
            let (rn, rnc) = ((1u64 << 32).div_ceil(u64::from(n)), (1u64 << 32).div_ceil(u64::from(nc)));
            let mean = |sum: u32, count: u32, recip: u64| ((u64::from(sum + count / 2) * recip) >> 32) as i32;
            for ((&y, &u), &v) in ys.iter().zip(us).zip(vs) {
                let (y, u, v) = (mean(y, n, rn), mean(u, nc, rnc), mean(v, nc, rnc));
                self.packed.extend_from_slice(&yuv_to_rgb(y, u, v, full_range));
            }
        }
        (w as u32, h as u32)
    }
}

/// BT.601 YUV to RGB in 8.8 fixed point (studio range unless `full_range`).
fn yuv_to_rgb(y: i32, u: i32, v: i32, full_range: bool) -> [u8; 3] {
    let (d, e) = (u - 128, v - 128);
    let (r, g, b) = if full_range {
        let c = y * 256;
        (c + 359 * e, c - 88 * d - 183 * e, c + 454 * d)
    } else {
        let c = (y - 16) * 298;
        (c + 409 * e, c - 100 * d - 208 * e, c + 516 * d)
    };
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [clamp(r), clamp(g), clamp(b)]
}

struct AudioDecoder {
    stream: usize,
    decoder: ff::decoder::Audio,
    resampler: Option<ff::software::resampling::Context>,
    decoded: ff::frame::Audio,
    resampled: ff::frame::Audio,
    samples: u64,
}

impl AudioDecoder {
    fn open(path: &Path, input: &ff::format::context::Input) -> Result<Option<Self>> {
        let Some(stream) = input.streams().best(ff::media::Type::Audio) else {
            return Ok(None);
        };
        let decoder = codec_context(path, &stream, "audio")?
            .decoder()
            .audio()
            .map_err(|e| Error::media(path, format!("cannot open audio decoder: {e}")))?;
        Ok(Some(AudioDecoder {
            stream: stream.index(),
            decoder,
            resampler: None,
            decoded: ff::frame::Audio::empty(),
            resampled: ff::frame::Audio::empty(),
            samples: 0,
        }))
    }

    fn drain(&mut self, path: &Path, sink: &mut dyn FrameSink) -> Result<Flow> {
        while self.decoder.receive_frame(&mut self.decoded).is_ok() {
            if self.resampler.is_none() {
                let layout = match self.decoded.channel_layout() {
                    l if l.bits() == 0 => ff::ChannelLayout::default(i32::from(self.decoded.channels())),
                    l => l,
                };
                self.decoded.set_channel_layout(layout);
                let ctx = ff::software::resampling::Context::get(
                    self.decoded.format(),
                    layout,
                    self.decoded.rate(),
                    ff::format::Sample::F32(ff::format::sample::Type::Packed),
                    ff::ChannelLayout::MONO,
                    ANALYSIS_SAMPLE_RATE,
                )
                .map_err(|e| Error::media(path, format!("cannot resample audio: {e}")))?;
                self.resampler = Some(ctx);
            } else if self.decoded.channel_layout().bits() == 0 {
                self.decoded.set_channel_layout(ff::ChannelLayout::default(i32::from(self.decoded.channels())));
            }
            let resampler = self.resampler.as_mut().expect("resampler set above");
            // swr_convert_frame sizes the output itself; reusing a frame of another size is an error.
            self.resampled = ff::frame::Audio::empty();
            resampler
                .run(&self.decoded, &mut self.resampled)
                .map_err(|e| Error::media(path, format!("audio resampling failed: {e}")))?;
            if self.emit(sink)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    fn flush(&mut self, path: &Path, sink: &mut dyn FrameSink) -> Result<Flow> {
        if let Some(resampler) = self.resampler.as_mut() {
            self.resampled = ff::frame::Audio::new(
                ff::format::Sample::F32(ff::format::sample::Type::Packed),
                4096,
                ff::ChannelLayout::MONO,
            );
            resampler
                .flush(&mut self.resampled)
                .map_err(|e| Error::media(path, format!("audio resampling failed: {e}")))?;
            return self.emit(sink);
        }
        Ok(Flow::Continue)
    }

    fn emit(&mut self, sink: &mut dyn FrameSink) -> Result<Flow> {
        let n = self.resampled.samples();
        if n == 0 {
            return Ok(Flow::Continue);
        }
        let samples = &self.resampled.plane::<f32>(0)[..n];
        self.samples += n as u64;
        sink.audio_samples(samples)
    }
}
