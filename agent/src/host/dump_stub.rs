// TEMPORARY stand-in for crate::artifacts::dump while it is written.
#![allow(dead_code, unused)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
pub type Counts = BTreeMap<String, u64>;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgFormat {
    Custom,
    Directory,
}
#[derive(Debug, Clone)]
pub struct PgDumpOptions {
    pub format: PgFormat,
    pub compression: u8,
    pub jobs: u8,
    pub include_schemas: Vec<String>,
    pub exclude_schemas: Vec<String>,
    pub include_tables: Vec<String>,
    pub exclude_tables: Vec<String>,
}
#[derive(Debug, Clone)]
pub struct MongoDumpOptions {
    pub database: Option<String>,
    pub include_collections: Vec<String>,
    pub exclude_collections: Vec<String>,
    pub gzip: bool,
}
#[derive(Debug, Clone)]
pub enum DumpOptions {
    Postgres(PgDumpOptions),
    Mongodb(MongoDumpOptions),
    Sqlite,
}
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub clean: bool,
    pub jobs: u8,
    pub database: Option<String>,
}
#[derive(Debug, Clone, Default)]
pub struct Tools {
    pub pg_bin_dir: Option<PathBuf>,
}
pub struct DumpContext<'a> {
    pub application_name: String,
    pub redactor: &'a crate::secrets::Redactor,
    pub tools: &'a Tools,
}
#[derive(Debug, Clone, Default)]
pub struct DumpOutcome {
    pub counts: Counts,
    pub metadata: BTreeMap<String, String>,
}
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Unsupported(String),
}
pub fn artifact_kind(options: &DumpOptions) -> crate::artifacts::ArtifactKind {
    crate::artifacts::ArtifactKind::File
}
pub fn validate(source: &crate::config::Target, options: &DumpOptions) -> Result<(), DumpError> {
    Ok(())
}
pub async fn dump(
    source: &crate::config::Target,
    options: &DumpOptions,
    out: &Path,
    ctx: &DumpContext<'_>,
) -> Result<DumpOutcome, DumpError> {
    Err(DumpError::Failed("stub".into()))
}
pub async fn restore(
    destination: &crate::config::Target,
    data: &Path,
    metadata: &BTreeMap<String, String>,
    options: &RestoreOptions,
    ctx: &DumpContext<'_>,
) -> Result<Counts, DumpError> {
    Err(DumpError::Failed("stub".into()))
}
