//! What the language model is told about a segment, exactly:
//!
//! - the media item's title, its type and length;
//! - the segment's time span;
//! - the transcript of the segment (the phrases whose middle falls inside it), at most
//!   [`MAX_TRANSCRIPT_CHARS`] characters;
//! - a little of the neighbouring transcript: up to [`NEIGHBOUR_CHARS`] characters of what is said
//!   just before and just after;
//! - when a visual model is loaded and the segment has a keyframe vector, the visual model's
//!   zero-shot scores for each enum field of the schema (softmax over "a photo of {value}").
//!
//! The schema goes in as a list of fields with their types, allowed values and descriptions,
//! and it also constrains the reply token by token. The whole prompt is kept in the call log.

use serde_json::Value;

use crate::ml::Models;
use crate::store::Stores;
use crate::types::{secs_to_us, Media, Phrase, Segment, SegmentResult, Space};

pub const MAX_TRANSCRIPT_CHARS: usize = 1500;
pub const NEIGHBOUR_CHARS: usize = 200;
pub const MAX_SYNTHESIS_CHARS: usize = 6000;

/// The evidence for one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub title: String,
    pub media_type: String,
    pub media_seconds: f64,
    pub start: f64,
    pub end: f64,
    pub transcript: String,
    pub before: String,
    pub after: String,
    /// Per enum field: `(path, [(value, score)])`, best first.
    pub visual: Vec<(String, Vec<(String, f32)>)>,
}

/// At most `max` characters of `text`, cut at a character boundary, with an ellipsis when cut.
pub fn clip_text(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max).collect();
    s.push('…');
    s
}

fn tail(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    format!("…{}", text.chars().skip(n - max).collect::<String>())
}

impl Evidence {
    /// Gather the evidence for `segments[i]`.
    pub fn gather(
        media: &Media,
        segments: &[Segment],
        i: usize,
        phrases: &[Phrase],
        visual: Option<&VisualScores>,
    ) -> Self {
        let seg = &segments[i];
        let last = i + 1 == segments.len();
        let mid = |p: &Phrase| secs_to_us((p.start + p.end) / 2.0);
        let join = |ps: Vec<&Phrase>| ps.iter().map(|p| p.text.trim()).collect::<Vec<_>>().join(" ");
        let inside = join(phrases.iter().filter(|p| seg.holds(mid(p), last)).collect());
        let before = join(phrases.iter().filter(|p| mid(p) < seg.start_us).collect());
        let after = join(phrases.iter().filter(|p| mid(p) >= seg.end_us && !last).collect());
        Evidence {
            title: media.title.clone(),
            media_type: media.media_type.map_or("media".into(), |t| t.as_str().to_string()),
            media_seconds: media.duration.unwrap_or(0.0),
            start: seg.start,
            end: seg.end,
            transcript: clip_text(&inside, MAX_TRANSCRIPT_CHARS),
            before: tail(&before, NEIGHBOUR_CHARS),
            after: clip_text(&after, NEIGHBOUR_CHARS),
            visual: visual.map(|v| v.for_segment(&seg.segment_id)).unwrap_or_default(),
        }
    }

    /// The evidence as the model reads it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "Media: \"{}\" ({}, {:.1} s)\nSegment: {:.1} s to {:.1} s\n",
            self.title, self.media_type, self.media_seconds, self.start, self.end
        );
        if self.transcript.is_empty() {
            out.push_str("Transcript of the segment: (nothing is said)\n");
        } else {
            out.push_str(&format!("Transcript of the segment: \"{}\"\n", self.transcript));
        }
        if !self.before.is_empty() {
            out.push_str(&format!("Said just before: \"{}\"\n", self.before));
        }
        if !self.after.is_empty() {
            out.push_str(&format!("Said just after: \"{}\"\n", self.after));
        }
        for (field, scores) in &self.visual {
            let list: Vec<String> = scores.iter().map(|(v, s)| format!("{v} {s:.2}")).collect();
            out.push_str(&format!("Visual model scores for {field}: {}\n", list.join(", ")));
        }
        out
    }
}

/// The schema as a list of fields for the prompt: `- scene.location (string): where it happens`.
pub fn describe_fields(schema: &Value) -> String {
    let mut lines = Vec::new();
    describe(schema, "", &mut lines);
    lines.join("\n")
}

fn describe(node: &Value, path: &str, out: &mut Vec<String>) {
    let ty = node.get("type").and_then(Value::as_str).unwrap_or("value");
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            describe(v, &p, out);
        }
        return;
    }
    if path.is_empty() {
        return;
    }
    let (ty, inner) = match (ty, node.get("items")) {
        ("array", Some(items)) => {
            if items.get("properties").is_some() {
                out.push(format!("- {path} (list of objects){}", desc(node)));
                describe(items, &format!("{path}[]"), out);
                return;
            }
            (format!("list of {}", items.get("type").and_then(Value::as_str).unwrap_or("value")), items)
        }
        _ => (ty.to_string(), node),
    };
    let allowed = inner
        .get("enum")
        .and_then(Value::as_array)
        .map(|vals| {
            let vs: Vec<String> = vals.iter().map(|v| v.as_str().map_or(v.to_string(), str::to_string)).collect();
            format!(", one of: {}", vs.join(", "))
        })
        .unwrap_or_default();
    out.push(format!("- {path} ({ty}{allowed}){}", desc(node)));
}

fn desc(node: &Value) -> String {
    node.get("description").and_then(Value::as_str).map(|d| format!(": {d}")).unwrap_or_default()
}

/// The fields of a segment result given to the media-wide synthesis (`transcription` is the
/// segment's transcript), as `name: value` pairs.
pub fn included_fields(result: &SegmentResult, fields: Option<&[String]>, phrases: &[Phrase]) -> String {
    let transcript = || {
        let (s, e) = (secs_to_us(result.start_time), secs_to_us(result.end_time));
        phrases
            .iter()
            .filter(|p| {
                let m = secs_to_us((p.start + p.end) / 2.0);
                m >= s && m < e
            })
            .map(|p| p.text.trim())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match fields {
        None => result.metadata.to_string(),
        Some(list) => list
            .iter()
            .filter_map(|f| {
                let v = if f == "transcription" {
                    Some(Value::String(transcript()))
                } else {
                    super::schema::field(&result.metadata, f)
                };
                v.map(|v| format!("{f}: {}", v.as_str().map_or(v.to_string(), str::to_string)))
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// An enum field's path and its values, each with its unit text vector.
type EnumField = (String, Vec<(String, Vec<f32>)>);

/// The visual model's zero-shot scores for a media item's keyframes against the enum values of a
/// schema; built once per media item.
pub struct VisualScores {
    /// Per enum field: the values and their unit text vectors.
    fields: Vec<EnumField>,
    /// Keyframe vectors by segment.
    keyframes: std::collections::HashMap<String, Vec<f32>>,
}

impl VisualScores {
    /// `None` when there is no visual model, no enum field, or no keyframe vector.
    pub fn new(stores: &Stores, models: &Models, media: &Media, schema: &Value) -> Option<Self> {
        let enums = super::schema::enum_fields(schema);
        if enums.is_empty() {
            return None;
        }
        let clip = models.visual().ok().flatten()?;
        let keyframes: std::collections::HashMap<String, Vec<f32>> = stores
            .vectors
            .media_vectors(&media.video_id)
            .ok()?
            .into_iter()
            .filter(|v| v.space == Space::Visual)
            .map(|v| (v.segment_id.to_string(), v.vector))
            .collect();
        if keyframes.is_empty() {
            return None;
        }
        let mut fields = Vec::new();
        for (path, values) in enums {
            let prompts: Vec<String> = values.iter().map(|v| format!("a photo of {v}")).collect();
            let vectors = clip.embed_texts(&prompts.iter().map(String::as_str).collect::<Vec<_>>()).ok()?;
            fields.push((path, values.into_iter().zip(vectors).collect()));
        }
        Some(VisualScores { fields, keyframes })
    }

    fn for_segment(&self, segment_id: &str) -> Vec<(String, Vec<(String, f32)>)> {
        let Some(key) = self.keyframes.get(segment_id) else { return Vec::new() };
        self.fields
            .iter()
            .map(|(path, values)| {
                // CLIP's logit scale (100) and a softmax, as in zero-shot classification.
                let logits: Vec<f32> =
                    values.iter().map(|(_, v)| 100.0 * v.iter().zip(key).map(|(a, b)| a * b).sum::<f32>()).collect();
                let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
                let sum: f32 = exp.iter().sum();
                let mut scored: Vec<(String, f32)> =
                    values.iter().zip(exp).map(|((name, _), e)| (name.clone(), e / sum)).collect();
                scored.sort_by(|a, b| b.1.total_cmp(&a.1));
                (path.clone(), scored)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_listed_with_types_allowed_values_and_descriptions() {
        let schema = json!({"type": "object", "properties": {
            "mood": {"type": "string", "enum": ["calm", "tense"], "description": "overall mood"},
            "objects": {"type": "array", "items": {"type": "string"}},
            "people": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}});
        assert_eq!(
            describe_fields(&schema),
            "- mood (string, one of: calm, tense): overall mood\n- objects (list of string)\n- people (list of objects)\n- people[].name (string)"
        );
    }

    #[test]
    fn long_text_is_clipped_at_a_character_boundary() {
        assert_eq!(clip_text("héllo", 3), "hél…");
        assert_eq!(tail("héllo", 2), "…lo");
        assert_eq!(clip_text("ok", 3), "ok");
    }
}
