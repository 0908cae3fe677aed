//! Integration tests on real media: one binary, one module per area.
//!
//! The media comes from `fixtures/make.sh` (the README's test command runs it first); facts about
//! each file (duration, cuts, speech) come from `fixtures/ground_truth.json`.

mod accuracy;
mod bad_input;
mod cli;
mod clip_golden;
mod common;
mod delivery;
mod durability;
mod filter;
mod ingest;
mod jobs;
mod prompts;
mod search;
mod sql;
mod transcripts;
mod transnet;
mod whisper;
