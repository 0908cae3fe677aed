//! Stage 4, embed: keyframe thumbnails into the visual space (CLIP's image tower) and segment
//! texts into the transcript or metadata space (the sentence encoder), handed to the vector store.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::ids::SegmentId;
use crate::jobs::JobContext;
use crate::media::decode_image_bytes;
use crate::ml::{clip::IMAGE_BATCH, Models, Role};
use crate::store::{NewVector, PendingThumbnail, Stores};
use crate::types::{JobStage, Scope, Space};

/// What embedding keyframes did.
#[derive(Debug, Default)]
pub(crate) struct Embedded {
    pub stored: usize,
    /// Thumbnails that could not be read or decoded (each skipped, with the reason).
    pub skipped: Vec<String>,
}

/// Embed these thumbnails into the visual space, batch by batch. A thumbnail that cannot be
/// read or decoded is skipped and reported; the others are stored. `Ok` with nothing stored
/// without a visual model.
pub(crate) fn embed_thumbnails(
    stores: &Stores,
    models: &Models,
    todo: &[PendingThumbnail],
    ctx: &JobContext,
) -> Result<Embedded> {
    let mut out = Embedded::default();
    let Some(clip) = models.visual()? else {
        return Ok(out);
    };
    for (n, chunk) in todo.chunks(IMAGE_BATCH).enumerate() {
        ctx.check()?;
        ctx.progress(JobStage::Embedding, (n * IMAGE_BATCH) as f32 / todo.len().max(1) as f32);
        let mut images = Vec::with_capacity(chunk.len());
        let mut rows = Vec::with_capacity(chunk.len());
        for t in chunk {
            let decoded = stores.blobs.get(&t.thumbnail).map_err(|e| e.to_string()).and_then(|bytes| {
                decode_image_bytes(&bytes, &format!("thumbnail {} of segment {}", t.thumbnail, t.segment_id))
            });
            match decoded {
                Ok(img) => {
                    images.push(img);
                    rows.push(t);
                }
                Err(e) => out.skipped.push(e),
            }
        }
        if images.is_empty() {
            continue;
        }
        let vectors = clip.embed_images(&images)?;
        // Group by scope (a batch may span media of several indexes).
        let mut by_scope: BTreeMap<&Scope, Vec<NewVector<'_>>> = BTreeMap::new();
        for (t, v) in rows.iter().zip(&vectors) {
            by_scope.entry(&t.scope).or_default().push(NewVector {
                segment_id: &t.segment_id,
                vector: v,
                source_text: None,
            });
        }
        for (scope, rows) in by_scope {
            stores.vectors.upsert(scope, Space::Visual, clip.model_ref(), &rows)?;
            out.stored += rows.len();
        }
    }
    Ok(out)
}

/// Embed one text per segment of `scope` into `space` (transcript or metadata) with the
/// sentence encoder.
pub(crate) fn embed_texts(
    stores: &Stores,
    models: &Models,
    scope: &Scope,
    space: Space,
    texts: &[(SegmentId, String)],
) -> Result<()> {
    if texts.is_empty() {
        return Ok(());
    }
    let encoder = models.text()?.ok_or_else(|| models.missing(Role::Text))?;
    let vectors = encoder.embed(&texts.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>())?;
    let rows: Vec<NewVector<'_>> = texts
        .iter()
        .zip(&vectors)
        .map(|((segment_id, text), v)| NewVector { segment_id, vector: v, source_text: Some(text) })
        .collect();
    stores.vectors.upsert(scope, space, encoder.model_ref(), &rows)
}
