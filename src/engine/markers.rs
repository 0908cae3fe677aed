//! `engine.markers()`: a colour and a note pinned on media, segments, prompts, runs, results or
//! one of their extracted fields.

use super::Engine;
use crate::delivery::markers as store;
use crate::delivery::{Marker, MarkerUpsert};
use crate::error::{Error, Result};

/// `client.markers`: list, upsert, delete.
pub struct Markers<'a> {
    engine: &'a Engine,
}

impl<'a> Markers<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Markers { engine }
    }

    /// Create the marker of (target, field), or replace its color and note. The target must
    /// exist (404 otherwise).
    pub fn upsert(&self, m: &MarkerUpsert) -> Result<Marker> {
        store::check(m)?;
        let stores = self.engine.stores();
        let id = m.target_id.trim();
        let pair = || {
            id.split_once('/').ok_or_else(|| {
                Error::invalid("target_id", format!("{id:?}: a result is named <run_id>/<segment_id or video_id>"))
            })
        };
        match m.target_type.as_str() {
            "video" => drop(stores.catalog.media(id)?),
            "segment" => drop(stores.catalog.segment(id)?),
            "prompt" => drop(stores.prompts.prompt(id)?),
            "prompt_run" => drop(stores.prompts.run(id)?),
            "segment_result" => {
                let (run, segment) = pair()?;
                stores
                    .prompts
                    .segment_result(run, segment)?
                    .ok_or_else(|| Error::not_found("segment result", id.to_string()))?;
            }
            _ => {
                let (run, video) = pair()?;
                stores
                    .prompts
                    .video_result(run, video)?
                    .ok_or_else(|| Error::not_found("video result", id.to_string()))?;
            }
        }
        let mut m = m.clone();
        m.target_id = id.to_string();
        store::upsert(&self.engine.core().delivery, &m)
    }

    /// Markers, optionally only those of one target type and id.
    pub fn list(&self, target_type: Option<&str>, target_id: Option<&str>) -> Result<Vec<Marker>> {
        store::list(&self.engine.core().delivery, target_type, target_id)
    }

    pub fn retrieve(&self, marker_id: &str) -> Result<Marker> {
        store::get(&self.engine.core().delivery, marker_id)
    }

    pub fn delete(&self, marker_id: &str) -> Result<()> {
        store::delete(&self.engine.core().delivery, marker_id)
    }
}
