//! Connectors: where media comes from and exports go. A local folder, S3, Azure Blob or GCS,
//! all read and written through `object_store`.
//!
//! Secrets (keys, client secrets, service-account files) are written to
//! `secrets/<connector_id>.json` (mode 0600, in a 0700 folder) and never returned; the row keeps
//! only what a listing shows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path as StorePath;
use object_store::ObjectStore;
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::db::{Db, Sql};
use crate::error::{Error, Result};
use crate::store::sqlite::now_rfc3339;

crate::types::api_enum! {
    /// Where a connector's files are.
    pub enum Provider ("provider") {
        /// A folder on this machine.
        Local = "local",
        S3 = "s3",
        Azure = "azure",
        Gcs = "gcs",
    }
}

/// A connector as a listing shows it (never its secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Connector {
    pub connector_id: String,
    pub name: String,
    pub provider: Provider,
    /// `active`, or `failed` after a failed test.
    pub status: String,
    /// `import`, `export`.
    pub scopes: Vec<String>,
    /// `all`, or `new_only` (an import skips files an earlier import of this connector brought in).
    pub import_mode: String,
    pub export_base_path: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub storage_account: Option<String>,
    pub container: Option<String>,
    pub gcp_project_id: Option<String>,
    /// The folder of a local connector.
    pub path: Option<String>,
    /// A storage endpoint other than the provider's own (an S3-compatible server, an emulator).
    pub endpoint: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_tested_at: Option<String>,
    pub last_test_result: Option<String>,
    pub last_test_error: Option<String>,
}

/// A connector to create. Build with [`NewConnector::local`], [`NewConnector::s3`],
/// [`NewConnector::azure`] or [`NewConnector::gcs`], then the optional settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct NewConnector {
    pub name: String,
    pub provider: Option<Provider>,
    pub scopes: Option<Vec<String>>,
    pub import_mode: Option<String>,
    pub export_base_path: Option<String>,
    pub path: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub storage_account: Option<String>,
    pub container: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// An Azure storage account key (instead of a service principal).
    pub access_key: Option<String>,
    pub gcp_project_id: Option<String>,
    /// The service-account JSON of a GCS connector.
    pub credentials_json: Option<String>,
}

impl NewConnector {
    pub fn local(name: impl Into<String>, folder: impl AsRef<Path>) -> Self {
        NewConnector {
            name: name.into(),
            provider: Some(Provider::Local),
            path: Some(folder.as_ref().display().to_string()),
            ..Default::default()
        }
    }

    pub fn s3(
        name: impl Into<String>,
        bucket: impl Into<String>,
        region: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        NewConnector {
            name: name.into(),
            provider: Some(Provider::S3),
            bucket: Some(bucket.into()),
            region: Some(region.into()),
            aws_access_key_id: Some(access_key_id.into()),
            aws_secret_access_key: Some(secret_access_key.into()),
            ..Default::default()
        }
    }

    pub fn azure(name: impl Into<String>, storage_account: impl Into<String>, container: impl Into<String>) -> Self {
        NewConnector {
            name: name.into(),
            provider: Some(Provider::Azure),
            storage_account: Some(storage_account.into()),
            container: Some(container.into()),
            ..Default::default()
        }
    }

    pub fn gcs(
        name: impl Into<String>,
        bucket: impl Into<String>,
        project: impl Into<String>,
        credentials_json: impl Into<String>,
    ) -> Self {
        NewConnector {
            name: name.into(),
            provider: Some(Provider::Gcs),
            bucket: Some(bucket.into()),
            gcp_project_id: Some(project.into()),
            credentials_json: Some(credentials_json.into()),
            ..Default::default()
        }
    }

    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = Some(scopes.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn import_mode(mut self, mode: impl Into<String>) -> Self {
        self.import_mode = Some(mode.into());
        self
    }

    pub fn export_base_path(mut self, path: impl Into<String>) -> Self {
        self.export_base_path = Some(path.into());
        self
    }

    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// An Azure service principal.
    pub fn service_principal(
        mut self,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self.client_id = Some(client_id.into());
        self.client_secret = Some(client_secret.into());
        self
    }

    /// An Azure storage account key.
    pub fn access_key(mut self, key: impl Into<String>) -> Self {
        self.access_key = Some(key.into());
        self
    }
}

/// The outcome of [`Connectors::test`](crate::engine::Connectors::test).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConnectorTest {
    pub success: bool,
    pub error_message: Option<String>,
}

/// A file a connector can see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CloudFile {
    /// The full key (object name, or the path under a local connector's folder).
    pub path: String,
    pub name: String,
    pub size_bytes: u64,
    pub last_modified: String,
    pub content_type: Option<String>,
    /// The extension without its dot, lower case (`mp4`), or empty.
    pub extension: String,
}

/// Most files one listing returns; a listing that would return more fails and asks for a
/// narrower prefix or pattern.
pub const MAX_LISTED: usize = 100_000;

fn req<'a>(field: &str, v: &'a Option<String>) -> Result<&'a str> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Error::invalid(field, "is required")),
    }
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Check a new connector and store it; its secrets go to a file only the owner can read.
pub(crate) fn create(db: &Db, root: &Path, new: &NewConnector) -> Result<Connector> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("name", "must be 1 to 100 characters"));
    }
    let provider = new.provider.ok_or_else(|| Error::invalid("provider", "is required"))?;
    let scopes = new.scopes.clone().unwrap_or_else(|| vec!["import".into()]);
    if scopes.is_empty() {
        return Err(Error::invalid("scopes", "must name at least one of import, export"));
    }
    for s in &scopes {
        if s != "import" && s != "export" {
            return Err(Error::invalid("scopes", format!("{s:?} is not a scope: use import or export")));
        }
    }
    let import_mode = new.import_mode.clone().unwrap_or_else(|| "all".into());
    if import_mode != "all" && import_mode != "new_only" {
        return Err(Error::invalid("import_mode", format!("{import_mode:?} is not all or new_only")));
    }
    let mut config = json!({});
    let mut secrets = json!({});
    match provider {
        Provider::Local => {
            let folder = PathBuf::from(req("path", &new.path)?);
            let folder =
                folder.canonicalize().map_err(|e| Error::invalid("path", format!("{}: {e}", folder.display())))?;
            if !folder.is_dir() {
                return Err(Error::invalid("path", format!("{} is not a folder", folder.display())));
            }
            config["path"] = json!(folder.display().to_string());
        }
        Provider::S3 => {
            config["bucket"] = json!(req("bucket", &new.bucket)?);
            config["region"] = json!(req("region", &new.region)?);
            secrets["aws_access_key_id"] = json!(req("aws_access_key_id", &new.aws_access_key_id)?);
            secrets["aws_secret_access_key"] = json!(req("aws_secret_access_key", &new.aws_secret_access_key)?);
        }
        Provider::Azure => {
            config["storage_account"] = json!(req("storage_account", &new.storage_account)?);
            config["container"] = json!(req("container", &new.container)?);
            if let Some(key) = non_empty(&new.access_key) {
                secrets["access_key"] = json!(key);
            } else {
                secrets["tenant_id"] = json!(req("tenant_id", &new.tenant_id)?);
                secrets["client_id"] = json!(req("client_id", &new.client_id)?);
                secrets["client_secret"] = json!(req("client_secret", &new.client_secret)?);
            }
        }
        Provider::Gcs => {
            config["bucket"] = json!(req("bucket", &new.bucket)?);
            config["gcp_project_id"] = json!(req("gcp_project_id", &new.gcp_project_id)?);
            let creds = req("credentials_file", &new.credentials_json)?;
            let parsed: Value = serde_json::from_str(creds)
                .map_err(|e| Error::invalid("credentials_file", format!("is not JSON: {e}")))?;
            if parsed.get("private_key").is_none() || parsed.get("client_email").is_none() {
                return Err(Error::invalid(
                    "credentials_file",
                    "is not a service-account key (it needs private_key and client_email)",
                ));
            }
            secrets["credentials_json"] = json!(creds);
        }
    }
    if let Some(endpoint) = non_empty(&new.endpoint) {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::invalid("endpoint", format!("{endpoint:?} is not an http(s) URL")));
        }
        config["endpoint"] = json!(endpoint);
    }
    let connector_id = crate::ids::new("conn");
    write_secrets(root, &connector_id, &secrets)?;
    let now = now_rfc3339();
    let export_base_path = non_empty(&new.export_base_path).map(|p| p.trim_matches('/').to_string());
    let stored = db.write(|tx| {
        let seq = Db::next_seq(tx, "connectors").sql()?;
        tx.execute(
            "INSERT INTO connectors (connector_id, seq, name, provider, status, scopes, import_mode, export_base_path,
                 config, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?9)",
            params![
                connector_id,
                seq,
                name,
                provider.as_str(),
                serde_json::to_string(&scopes).unwrap_or_default(),
                import_mode,
                export_base_path,
                config.to_string(),
                now
            ],
        )
        .sql()
    });
    if let Err(e) = stored {
        let _ = std::fs::remove_file(secrets_path(root, &connector_id));
        return Err(e);
    }
    get(db, &connector_id)
}

fn secrets_path(root: &Path, connector_id: &str) -> PathBuf {
    root.join("secrets").join(format!("{connector_id}.json"))
}

fn write_secrets(root: &Path, connector_id: &str, secrets: &Value) -> Result<()> {
    let dir = root.join("secrets");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(&dir, e))?;
    }
    let path = secrets_path(root, connector_id);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path).map_err(|e| Error::io(&path, e))?;
    std::io::Write::write_all(&mut f, secrets.to_string().as_bytes()).map_err(|e| Error::io(&path, e))?;
    f.sync_all().map_err(|e| Error::io(&path, e))
}

fn read_secrets(root: &Path, connector_id: &str) -> Result<Value> {
    let path = secrets_path(root, connector_id);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Store(format!("{}: {e}", path.display())))
}

const COLUMNS: &str = "connector_id, name, provider, status, scopes, import_mode, export_base_path, config,
    created_at, updated_at, last_tested_at, last_test_result, last_test_error";

fn from_row(r: &Row) -> rusqlite::Result<Connector> {
    let provider: String = r.get(2)?;
    let scopes: String = r.get(4)?;
    let config: String = r.get(7)?;
    let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
    let field = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(Connector {
        connector_id: r.get(0)?,
        name: r.get(1)?,
        provider: provider.parse().unwrap_or(Provider::Local),
        status: r.get(3)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        import_mode: r.get(5)?,
        export_base_path: r.get(6)?,
        bucket: field("bucket"),
        region: field("region"),
        storage_account: field("storage_account"),
        container: field("container"),
        gcp_project_id: field("gcp_project_id"),
        path: field("path"),
        endpoint: field("endpoint"),
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        last_tested_at: r.get(10)?,
        last_test_result: r.get(11)?,
        last_test_error: r.get(12)?,
    })
}

pub(crate) fn get(db: &Db, connector_id: &str) -> Result<Connector> {
    db.with(|c| {
        c.query_row(&format!("SELECT {COLUMNS} FROM connectors WHERE connector_id = ?1"), [connector_id], from_row)
            .optional()
    })?
    .ok_or_else(|| Error::not_found("connector", connector_id))
}

pub(crate) fn list(db: &Db) -> Result<Vec<Connector>> {
    db.with(|c| {
        let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM connectors ORDER BY seq"))?;
        let rows = stmt.query_map([], from_row)?;
        rows.collect()
    })
}

/// Delete a connector and its secrets. Import jobs and exports that named it keep their records.
pub(crate) fn delete(db: &Db, root: &Path, connector_id: &str) -> Result<()> {
    let n = db.with(|c| c.execute("DELETE FROM connectors WHERE connector_id = ?1", [connector_id]))?;
    if n == 0 {
        return Err(Error::not_found("connector", connector_id));
    }
    let path = secrets_path(root, connector_id);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// An open connector: its record and its object store.
pub(crate) struct Open {
    pub connector: Connector,
    pub store: Arc<dyn ObjectStore>,
}

impl Open {
    /// Open the connector's storage (nothing is contacted yet).
    pub fn new(db: &Db, root: &Path, connector_id: &str) -> Result<Open> {
        let connector = get(db, connector_id)?;
        let secrets = read_secrets(root, connector_id)?;
        let secret = |k: &str| secrets.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let id = connector.connector_id.clone();
        let fail = |e: object_store::Error| Error::remote(format!("connector {id}"), e);
        let endpoint = connector.endpoint.clone();
        let store: Arc<dyn ObjectStore> = match connector.provider {
            Provider::Local => {
                let folder = connector.path.clone().unwrap_or_default();
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&folder).map_err(fail)?)
            }
            Provider::S3 => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(connector.bucket.clone().unwrap_or_default())
                    .with_region(connector.region.clone().unwrap_or_default())
                    .with_access_key_id(secret("aws_access_key_id"))
                    .with_secret_access_key(secret("aws_secret_access_key"));
                if let Some(e) = &endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                Arc::new(b.build().map_err(fail)?)
            }
            Provider::Azure => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_account(connector.storage_account.clone().unwrap_or_default())
                    .with_container_name(connector.container.clone().unwrap_or_default());
                b = match secrets.get("access_key").and_then(Value::as_str) {
                    Some(key) => b.with_access_key(key),
                    None => b.with_client_secret_authorization(
                        secret("client_id"),
                        secret("client_secret"),
                        secret("tenant_id"),
                    ),
                };
                if let Some(e) = &endpoint {
                    b = b.with_endpoint(e.clone()).with_allow_http(e.starts_with("http://"));
                }
                Arc::new(b.build().map_err(fail)?)
            }
            Provider::Gcs => {
                let b = object_store::gcp::GoogleCloudStorageBuilder::new()
                    .with_bucket_name(connector.bucket.clone().unwrap_or_default())
                    .with_service_account_key(secret("credentials_json"));
                Arc::new(b.build().map_err(fail)?)
            }
        };
        Ok(Open { connector, store })
    }

    fn fail(&self, e: impl std::fmt::Display) -> Error {
        Error::remote(format!("connector {} ({})", self.connector.connector_id, self.connector.name), e)
    }

    /// Files under `prefix` whose name (or, for a pattern with `/`, path under the prefix)
    /// matches `pattern`; only the prefix's own level unless `recursive`. Sorted by path.
    pub fn browse(&self, prefix: &str, pattern: &str, recursive: bool) -> Result<Vec<CloudFile>> {
        let matcher = super::glob("pattern", pattern)?;
        let by_path = pattern.contains('/');
        let prefix = prefix.trim_matches('/');
        let base = (!prefix.is_empty()).then(|| StorePath::from(prefix));
        let store = self.store.clone();
        let metas = super::block_on(async move {
            let mut out = Vec::new();
            if recursive {
                let mut stream = store.list(base.as_ref());
                while let Some(m) = stream.next().await {
                    out.push(m?);
                    if out.len() > MAX_LISTED {
                        break;
                    }
                }
            } else {
                out = store.list_with_delimiter(base.as_ref()).await?.objects;
            }
            Ok::<_, object_store::Error>(out)
        })?
        .map_err(|e| self.fail(e))?;
        if metas.len() > MAX_LISTED {
            return Err(Error::invalid(
                "source_prefix",
                format!("more than {MAX_LISTED} files under {prefix:?}: give a narrower prefix"),
            ));
        }
        let mut files: Vec<CloudFile> = metas
            .into_iter()
            .filter_map(|m| {
                let path = m.location.to_string();
                let name = m.location.filename().unwrap_or_default().to_string();
                let under = path.strip_prefix(prefix).unwrap_or(&path).trim_start_matches('/').to_string();
                let candidate = if by_path { under } else { name.clone() };
                // Hidden files and partial downloads of other tools are never media.
                if name.starts_with('.') || !matcher.is_match(&candidate) {
                    return None;
                }
                let extension =
                    Path::new(&name).extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
                Some(CloudFile {
                    path,
                    name,
                    size_bytes: m.size,
                    last_modified: m.last_modified.to_rfc3339(),
                    content_type: content_type(&extension).map(str::to_string),
                    extension,
                })
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Stream one file to `dest` (written to a `.part` name and renamed when complete), calling
    /// `on_bytes` with the running total; `stop` is asked between chunks.
    pub fn download(
        &self,
        path: &str,
        dest: &Path,
        on_bytes: &mut (dyn FnMut(u64) + Send),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<u64> {
        let part = dest.with_extension("part");
        let store = self.store.clone();
        let key = StorePath::from(path);
        let part2 = part.clone();
        let outcome = super::block_on(async move {
            use tokio::io::AsyncWriteExt;
            let got = store.get(&key).await.map_err(|e| e.to_string())?;
            let mut stream = got.into_stream();
            let mut file = tokio::fs::File::create(&part2).await.map_err(|e| format!("{}: {e}", part2.display()))?;
            let mut total = 0u64;
            while let Some(chunk) = stream.next().await {
                if stop() {
                    return Err("cancelled".to_string());
                }
                let chunk = chunk.map_err(|e| e.to_string())?;
                file.write_all(&chunk).await.map_err(|e| format!("{}: {e}", part2.display()))?;
                total += chunk.len() as u64;
                on_bytes(total);
            }
            file.sync_all().await.map_err(|e| format!("{}: {e}", part2.display()))?;
            Ok(total)
        })?;
        match outcome {
            Ok(total) => {
                std::fs::rename(&part, dest).map_err(|e| Error::io(dest, e))?;
                Ok(total)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                if e == "cancelled" {
                    Err(Error::Cancelled)
                } else {
                    Err(self.fail(format!("{path}: {e}")))
                }
            }
        }
    }

    /// Write `bytes` at `path` (one request; exports are at most 64 MiB).
    pub fn put(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        let store = self.store.clone();
        let key = StorePath::from(path);
        super::block_on(async move { store.put(&key, bytes.into()).await })?
            .map(|_| ())
            .map_err(|e| self.fail(format!("{path}: {e}")))
    }

    /// A URI naming `path` on this connector (`s3://bucket/key`, `file:///folder/key`).
    pub fn uri(&self, path: &str) -> String {
        let c = &self.connector;
        match c.provider {
            Provider::Local => format!("file://{}/{path}", c.path.as_deref().unwrap_or_default().trim_end_matches('/')),
            Provider::S3 => format!("s3://{}/{path}", c.bucket.as_deref().unwrap_or_default()),
            Provider::Gcs => format!("gs://{}/{path}", c.bucket.as_deref().unwrap_or_default()),
            Provider::Azure => format!(
                "az://{}/{}/{path}",
                c.storage_account.as_deref().unwrap_or_default(),
                c.container.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// The media type of a file by its extension, for the kinds the engine reads.
fn content_type(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "m4a" => "audio/mp4",
        "flac" => "audio/flac",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "json" => "application/json",
        _ => return None,
    })
}

/// Try the connector: list its root (or export base path). The outcome is stored on the row.
pub(crate) fn test(db: &Db, root: &Path, connector_id: &str) -> Result<ConnectorTest> {
    let open = Open::new(db, root, connector_id);
    let outcome = match &open {
        Ok(o) => {
            let store = o.store.clone();
            let base = o.connector.export_base_path.clone().filter(|p| !p.is_empty()).map(StorePath::from);
            match super::block_on(async move { store.list_with_delimiter(base.as_ref()).await })? {
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            }
        }
        Err(Error::NotFound { .. }) => return Err(Error::not_found("connector", connector_id)),
        Err(e) => Some(e.to_string()),
    };
    let now = now_rfc3339();
    let (status, result) = if outcome.is_none() { ("active", "success") } else { ("failed", "failed") };
    db.with(|c| {
        c.execute(
            "UPDATE connectors SET status = ?2, last_tested_at = ?3, last_test_result = ?4, last_test_error = ?5,
                 updated_at = ?3 WHERE connector_id = ?1",
            params![connector_id, status, now, result, outcome],
        )
    })?;
    Ok(ConnectorTest { success: outcome.is_none(), error_message: outcome })
}
