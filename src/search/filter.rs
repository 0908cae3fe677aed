//! Filter search (`POST /search/filter/{index_id}`) and the metadata restriction of vector
//! searches: conditions are checked against the schemas of the runs in scope, then answered by
//! the store over the leaves of each result.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::query::Searcher;
use crate::error::{Error, Result};
use crate::ids::{PromptId, RunId, SegmentId, VideoId};
use crate::store::ResultFilter;
use crate::store::RunOutline;
use crate::types::filter::{schema_fields, Condition, FieldType, Filter, MatchedFieldInstance};
use crate::types::{PageRequest, Scope};

/// `page_size` when none is given.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// `POST /search/filter/{index_id}`: `FilterSearch::new(vec![Condition::new(..)]).page_size(20)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FilterSearch {
    /// 1 to 4 conditions, combined with AND.
    pub conditions: Vec<Condition>,
    /// Results per page, 1 to 1000. Default [`DEFAULT_PAGE_SIZE`].
    pub page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only results of these runs (default: every run over media in scope).
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// Search these indexes instead of the one named by the call.
    #[serde(default)]
    pub index_ids: Vec<String>,
}

impl FilterSearch {
    pub fn new(conditions: Vec<Condition>) -> Self {
        FilterSearch { conditions, ..Default::default() }
    }

    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    pub fn run_ids(mut self, run_ids: Vec<String>) -> Self {
        self.run_ids = run_ids;
        self
    }

    pub fn index_ids(mut self, index_ids: Vec<String>) -> Self {
        self.index_ids = index_ids;
        self
    }
}

/// One result of a filter search: a segment's result in one run, and what matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FilterHit {
    pub segment_id: SegmentId,
    pub video_id: VideoId,
    pub video_name: String,
    pub run_id: RunId,
    pub prompt_id: PromptId,
    /// Seconds.
    pub start: f64,
    pub end: f64,
    pub metadata: Value,
    pub metadata_text: String,
    pub thumbnail_path: Option<String>,
    /// Canonical paths of the fields that matched, in condition order.
    pub matched_field_paths: Vec<String>,
    /// Every instance that matched (for array paths, each matching item).
    pub matched_field_instances: Vec<MatchedFieldInstance>,
}

/// A page of filter results, in the order the results were stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FilterResponse {
    pub results: Vec<FilterHit>,
    /// Pass as `cursor` for the next page; `None` on the last.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// What a metadata restriction reads, resolved: the checked filter over these runs and scopes.
#[derive(Debug, Clone)]
pub(crate) struct Restriction {
    pub scopes: Vec<Scope>,
    pub run_ids: Vec<String>,
    pub filter: Filter,
}

impl Restriction {
    pub fn as_filter(&self) -> ResultFilter<'_> {
        ResultFilter { scopes: &self.scopes, run_ids: &self.run_ids, filter: &self.filter }
    }
}

/// Check that every condition names a field some run declares, with a type that fits it.
fn check_fields(filter: &Filter, conditions: &[Condition], runs: &[RunOutline]) -> Result<()> {
    let fields: Vec<(String, FieldType)> = runs.iter().flat_map(|r| schema_fields(&r.json_schema)).collect();
    for (i, c) in filter.conditions.iter().enumerate() {
        let found: Vec<FieldType> = fields.iter().filter(|(p, _)| *p == c.field).map(|(_, t)| *t).collect();
        let bad =
            |message: String| Error::InvalidCondition { condition: i, field: conditions[i].field.clone(), message };
        if found.is_empty() {
            let mut known: Vec<&str> = fields.iter().map(|(p, _)| p.as_str()).collect();
            known.sort_unstable();
            known.dedup();
            return Err(bad(if runs.is_empty() {
                "no prompt run in scope has results to filter".to_string()
            } else {
                format!("not a field of the runs' schemas; fields: {}", known.join(", "))
            }));
        }
        if !found.iter().any(|t| c.field_type.fits(*t)) {
            return Err(bad(format!(
                "the field is of type {}, not {}",
                found.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" or "),
                c.field_type.as_str()
            )));
        }
    }
    Ok(())
}

impl Searcher<'_> {
    /// The scopes a request covers: `index_ids` when given (each must exist), else `scope`.
    pub fn scopes(&self, scope: &Scope, index_ids: &[String]) -> Result<Vec<Scope>> {
        if index_ids.is_empty() {
            return Ok(vec![scope.clone()]);
        }
        let mut out: Vec<Scope> = index_ids
            .iter()
            .map(|i| Ok(Scope::Index(self.stores.catalog.index(i)?.index_id)))
            .collect::<Result<_>>()?;
        out.dedup();
        Ok(out)
    }

    /// The runs a request reads: `run_ids` (each of which must exist), or every run over media
    /// in `scopes`.
    pub fn runs(&self, scopes: &[Scope], run_ids: &[String]) -> Result<Vec<RunOutline>> {
        if run_ids.is_empty() {
            self.stores.prompts.runs_in_scopes(scopes)
        } else {
            run_ids.iter().map(|id| self.stores.prompts.run_outline(id)).collect()
        }
    }

    /// Check `conditions` against the runs they read (see [`Searcher::runs`]).
    pub fn restriction(&self, scopes: Vec<Scope>, run_ids: &[String], conditions: &[Condition]) -> Result<Restriction> {
        let filter = Filter::check(conditions)?;
        let runs = self.runs(&scopes, run_ids)?;
        check_fields(&filter, conditions, &runs)?;
        let run_ids = runs.into_iter().map(|r| r.run_id.to_string()).collect();
        Ok(Restriction { scopes, run_ids, filter })
    }

    /// Filter search over completed run results.
    pub fn filter(&self, scope: &Scope, req: &FilterSearch) -> Result<crate::search::FilterResponse> {
        let scopes = self.scopes(scope, &req.index_ids)?;
        let r = self.restriction(scopes, &req.run_ids, &req.conditions)?;
        let size = req.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=crate::types::MAX_PAGE_LIMIT).contains(&size) {
            let max = crate::types::MAX_PAGE_LIMIT;
            return Err(Error::invalid("page_size", format!("must be 1 to {max}, got {size}")));
        }
        let page = PageRequest { limit: Some(size), cursor: req.cursor.clone() };
        let found = self.stores.prompts.filter_results(&r.as_filter(), &page)?;
        let mut results = Vec::with_capacity(found.data.len());
        for res in found.data {
            let Some(leaves) = r.filter.matches(&res.metadata) else {
                return Err(Error::Internal(format!(
                    "the store returned result {}/{} that the filter does not match",
                    res.run_id, res.segment_id
                )));
            };
            let mut paths: Vec<String> = Vec::new();
            for l in &leaves {
                if !paths.contains(&l.path) {
                    paths.push(l.path.clone());
                }
            }
            let thumbnail_path = match self.stores.catalog.segment(res.segment_id.as_str()) {
                Ok(s) => s.thumbnail_path,
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            results.push(FilterHit {
                segment_id: res.segment_id,
                video_id: res.video_id,
                video_name: res.video_name,
                run_id: res.run_id,
                prompt_id: res.prompt_id,
                start: res.start_time,
                end: res.end_time,
                metadata: res.metadata,
                metadata_text: res.metadata_text,
                thumbnail_path,
                matched_field_paths: paths,
                matched_field_instances: leaves.iter().map(Into::into).collect(),
            });
        }
        Ok(FilterResponse { results, next_cursor: found.next_cursor, has_more: found.has_more })
    }

    /// The segments with a result in one of `run_ids` (or made by one): every segment a
    /// run-restricted search may return. An unknown run id is a 404.
    pub fn run_segments(&self, run_ids: &[String]) -> Result<Option<HashSet<SegmentId>>> {
        if run_ids.is_empty() {
            return Ok(None);
        }
        let mut out = HashSet::new();
        for id in run_ids {
            self.stores.prompts.run_outline(id)?;
            out.extend(self.stores.prompts.run_segment_ids(id)?);
        }
        Ok(Some(out))
    }
}
