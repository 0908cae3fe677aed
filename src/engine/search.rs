//! `engine.search()`: resolve the scope, delegate to the search stage.

use super::Engine;
use crate::error::Result;
use crate::search::query::Searcher;
use crate::search::{
    FilterResponse, FilterSearch, ImageSearch, MultiRunSearch, MultimodalSearch, SearchResponse, SqlGenerate, SqlQuery,
    TextSearch,
};
use crate::types::sql::{SqlCatalog, SqlDraft, SqlResult};
use crate::types::Scope;

/// `client.search`: text, keyword, image, multimodal, filter and multi-run search over an index
/// (`Some(index id or name)`) or the playground (`None`).
pub struct Search<'a> {
    engine: &'a Engine,
}

impl<'a> Search<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Search { engine }
    }

    fn scope(&self, index: Option<&str>) -> Result<Scope> {
        Ok(match index {
            Some(i) => Scope::Index(self.engine.stores().catalog.index(i)?.index_id),
            None => Scope::Playground,
        })
    }

    fn searcher(&self) -> Searcher<'_> {
        let core = self.engine.core();
        Searcher { stores: &core.stores, models: &core.models }
    }

    /// Keyframes (CLIP text tower) and, where they exist, transcripts and metadata (sentence
    /// encoder); several spaces are fused by reciprocal rank fusion.
    pub fn text(&self, index: Option<&str>, req: &TextSearch) -> Result<SearchResponse> {
        self.searcher().text(&self.scope(index)?, req)
    }

    /// Segments whose transcript holds every word of the query (BM25 ranking).
    pub fn keyword(&self, index: Option<&str>, req: &TextSearch) -> Result<SearchResponse> {
        self.searcher().keyword(&self.scope(index)?, req)
    }

    /// Keyframes that look like an image; `score` is the cosine similarity.
    pub fn image(&self, index: Option<&str>, req: &ImageSearch) -> Result<SearchResponse> {
        self.searcher().image(&self.scope(index)?, req)
    }

    /// `text_weight * cos(text) + image_weight * cos(image)` over keyframes.
    pub fn multimodal(&self, index: Option<&str>, req: &MultimodalSearch) -> Result<SearchResponse> {
        self.searcher().multimodal(&self.scope(index)?, req)
    }

    /// Completed run results whose metadata passes every condition, a page at a time.
    pub fn filter(&self, index: Option<&str>, req: &FilterSearch) -> Result<FilterResponse> {
        self.searcher().filter(&self.scope(index)?, req)
    }

    /// A text search over the segments of each of several runs, combined (`best`, `all` or
    /// `weighted` by run recency).
    pub fn multi_run(&self, req: &MultiRunSearch) -> Result<SearchResponse> {
        self.searcher().multi_run(req)
    }

    /// SQL search: the catalog of tables, read-only queries, and drafts written by the local
    /// language model.
    pub fn sql(&self) -> SqlSearch<'a> {
        SqlSearch { search: Search { engine: self.engine } }
    }
}

/// `client.search.sql`: read-only, bounded SQL (SQLite's dialect) over views of an index (or the
/// playground) and its runs' results.
pub struct SqlSearch<'a> {
    search: Search<'a>,
}

impl SqlSearch<'_> {
    /// The tables a query may read (one per run, with a column per schema field), the default
    /// query and the limits. `run_ids` empty: every run over media in scope.
    pub fn catalog(&self, index: Option<&str>, run_ids: &[String], index_ids: &[String]) -> Result<SqlCatalog> {
        self.search.searcher().sql_catalog(&self.search.scope(index)?, run_ids, index_ids)
    }

    /// Run one SELECT. Anything else (writes, ATTACH, PRAGMA, other tables), a query past the
    /// time limit or a result past the size limit is [`crate::Error::QueryRefused`] (400).
    pub fn execute(&self, index: Option<&str>, req: &SqlQuery) -> Result<SqlResult> {
        self.search.searcher().sql_execute(&self.search.scope(index)?, req)
    }

    /// A draft query for an instruction, written by the local language model under a grammar of
    /// single SELECTs over the catalog's tables, and checked by preparing it.
    pub fn generate(&self, index: Option<&str>, req: &SqlGenerate) -> Result<SqlDraft> {
        self.search.searcher().sql_generate(&self.search.scope(index)?, req)
    }
}
