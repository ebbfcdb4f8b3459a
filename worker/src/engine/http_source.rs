//! `ADD <url>`: the `Http` source, a downloaded file in a snapshot of its own.
//!
//! Main type: [`HttpSource`], held by the worker for one build: it resolves a URL to a content
//! digest for the cache key and hands the downloaded snapshot to the step that runs.
//!
//! Key decisions (BuildKit's `source/http`):
//! - An unpinned URL is re-checked on every build, as BuildKit does: the cache key folds in
//!   the content's sha256 (with the file name and `Last-Modified`). The ETag of the last
//!   download is sent as `If-None-Match`; a 304 (or the same ETag) reuses the stored file
//!   without reading a body, otherwise the body is downloaded again and hashed. A no-op
//!   rebuild stays cached either way; changed content changes the key.
//! - A `--checksum` pins the key without any request; the download, made only when the step
//!   runs, must match it (`digest mismatch for URL: GOT (expected: WANT)`).
//! - The file is written 0600 (BuildKit's default; `--chmod`/`--chown` apply in the copy)
//!   with its mtime from `Last-Modified` (else the epoch). The body streams to disk through a
//!   bounded channel while it is hashed; nothing is held in memory whole.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, FileTimes, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use strata_cache::{CacheValue, Lease, SnapshotId, Store};
use strata_oci::digest::HashingWriter;
use strata_solver::Digest;

/// BuildKit's mode for a downloaded file when the op sets none.
const DEFAULT_MODE: u32 = 0o600;

/// Why a URL could not be added.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// `--checksum` is not a `sha256:` digest.
    #[error("invalid checksum {checksum:?}: {reason} (expected sha256:<64 hex digits>)")]
    InvalidChecksum {
        /// As written.
        checksum: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The request failed (connection, TLS, a body cut short).
    #[error("failed to fetch {url}: {detail}")]
    Request {
        /// The URL.
        url: String,
        /// The error and its causes, down to the system's (`Connection refused`).
        detail: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status (BuildKit's text, with the URL).
    #[error("invalid response status {status} for {url}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The content does not have the pinned digest (BuildKit's text).
    #[error("digest mismatch for {url}: {got} (expected: {expected})")]
    DigestMismatch {
        /// The URL.
        url: String,
        /// Digest of what was downloaded.
        got: String,
        /// The `--checksum` value.
        expected: String,
    },
    /// The downloaded file could not be written.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The snapshot could not be prepared or committed.
    #[error(transparent)]
    Snapshot(#[from] strata_cache::SnapshotError),
    /// The URL's record could not be read or written.
    #[error(transparent)]
    Cache(#[from] strata_cache::CacheError),
}

/// What the last download of a URL left, stored in the cache index under the URL's key
/// (the snapshot is the record's own).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct UrlRecord {
    etag: Option<String>,
    digest: String,
    last_modified: Option<String>,
    filename: String,
}

/// A URL resolved in this build: its content and the snapshot holding it.
#[derive(Debug, Clone)]
struct Resolved {
    record: UrlRecord,
    snapshot: SnapshotId,
}

/// What an `Http` op asks for.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// The URL.
    pub url: &'a str,
    /// Pinned `sha256:…` digest.
    pub checksum: Option<&'a str>,
    /// Name of the file (empty: from `Content-Disposition` or the URL path).
    pub filename: &'a str,
    /// Mode of the file (`None`: 0600).
    pub chmod: Option<u32>,
}

impl HttpRequest<'_> {
    fn mode(&self) -> u32 {
        self.chmod.unwrap_or(DEFAULT_MODE) & 0o7777
    }

    /// Key of the URL's record: what identifies "the same download" (BuildKit's urlHash).
    fn url_key(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"strata.http.url.v1\0");
        h.update(self.url.as_bytes());
        h.update(b"\0");
        h.update(self.filename.as_bytes());
        h.update(&self.mode().to_le_bytes());
        *h.finalize().as_bytes()
    }

    /// The content part of the cache key (BuildKit's formatCacheKey).
    fn content_key(&self, filename: &str, digest: &str, last_modified: Option<&str>) -> Digest {
        let mut h = blake3::Hasher::new();
        h.update(b"strata.http.v1\0");
        h.update(filename.as_bytes());
        h.update(b"\0");
        h.update(&self.mode().to_le_bytes());
        h.update(digest.as_bytes());
        h.update(b"\0");
        h.update(last_modified.unwrap_or_default().as_bytes());
        Digest(*h.finalize().as_bytes())
    }
}

/// Downloads for one build.
#[derive(Debug)]
pub struct HttpSource {
    /// Made on first use: building a client loads the system's root certificates, which a
    /// build without `ADD <url>` should not pay for.
    client: std::sync::OnceLock<reqwest::Client>,
    /// Keeps the snapshots resolved in this build until it ends.
    lease: Lease,
    resolved: Mutex<HashMap<[u8; 32], Resolved>>,
}

impl HttpSource {
    /// A client with the system's proxy settings (as BuildKit's), holding what it resolves
    /// under `lease`.
    pub fn new(lease: Lease) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            lease,
            resolved: Mutex::new(HashMap::new()),
        }
    }

    /// The content key of `req`: from the pinned checksum, or from the content the URL
    /// serves now (which may download it).
    pub async fn content_key(
        &self,
        store: &Store,
        req: HttpRequest<'_>,
    ) -> Result<Digest, HttpError> {
        if let Some(checksum) = req.checksum {
            validate_checksum(checksum)?;
            let filename = safe_file_name(req.filename);
            return Ok(req.content_key(&filename, checksum, None));
        }
        let resolved = self.resolve(store, req).await?;
        let r = &resolved.record;
        Ok(req.content_key(&r.filename, &r.digest, r.last_modified.as_deref()))
    }

    /// The snapshot holding the file of `req`, downloading it unless this build already did.
    pub async fn snapshot(
        &self,
        store: &Store,
        req: HttpRequest<'_>,
    ) -> Result<SnapshotId, HttpError> {
        let known = self.resolved.lock().unwrap().get(&req.url_key()).cloned();
        let resolved = match known {
            Some(r) => r,
            None if req.checksum.is_some() => {
                // A pinned URL is fetched only now, when its step runs.
                self.download(store, req, None).await?
            }
            None => self.resolve(store, req).await?,
        };
        if let Some(expected) = req.checksum {
            if resolved.record.digest != expected {
                return Err(HttpError::DigestMismatch {
                    url: req.url.to_string(),
                    got: resolved.record.digest,
                    expected: expected.to_string(),
                });
            }
        }
        Ok(resolved.snapshot)
    }

    /// What the URL serves now: the stored download when the server says it is unchanged
    /// (ETag), else a new download.
    async fn resolve(&self, store: &Store, req: HttpRequest<'_>) -> Result<Resolved, HttpError> {
        let url_key = req.url_key();
        if let Some(r) = self.resolved.lock().unwrap().get(&url_key) {
            return Ok(r.clone());
        }
        let previous = previous_download(store, &url_key, &self.lease)?;
        let resolved = self.download(store, req, previous).await?;
        self.resolved
            .lock()
            .unwrap()
            .insert(url_key, resolved.clone());
        Ok(resolved)
    }

    /// GETs the URL (conditionally on `previous`'s ETag) into a new snapshot, or reuses
    /// `previous` when the server reports or serves the same content.
    async fn download(
        &self,
        store: &Store,
        req: HttpRequest<'_>,
        previous: Option<Resolved>,
    ) -> Result<Resolved, HttpError> {
        let url = req.url.to_string();
        let request_error = |source: reqwest::Error| HttpError::Request {
            url: url.clone(),
            detail: causes(&source),
            source,
        };
        let client = self.client.get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default()
        });
        let mut get = client.get(req.url);
        let previous_etag = previous.as_ref().and_then(|p| p.record.etag.clone());
        if let Some(etag) = &previous_etag {
            get = get.header(reqwest::header::IF_NONE_MATCH, etag.as_str());
        }
        let mut response = get.send().await.map_err(request_error)?;
        let status = response.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(reqwest::header::ETAG).map(|e| etag_value(&e));
        if let Some(previous) = &previous {
            // 304, or a server that ignores If-None-Match but reports the same ETag.
            let same = etag.is_some() && etag == previous_etag;
            if status == 304 || (status == 200 && same) {
                return Ok(previous.clone());
            }
        }
        if !(200..300).contains(&status) {
            return Err(HttpError::Status { url, status });
        }
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let filename = file_name(
            req.url,
            req.filename,
            header(reqwest::header::CONTENT_DISPOSITION).as_deref(),
        );

        let prepared = store.snapshots().prepare(None, &self.lease)?;
        let path = prepared.diff().join(&filename);
        let mtime = last_modified
            .as_deref()
            .and_then(parse_http_date)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let writer = {
            let (path, mode) = (path.clone(), req.mode());
            tokio::task::spawn_blocking(move || write_body(&path, mode, mtime, rx))
        };
        let mut failed = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if tx.send(chunk).await.is_err() {
                        break; // The writer failed; its error is reported below.
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(request_error(e));
                    break;
                }
            }
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|r| r);
        let digest = match (failed, written) {
            (None, Ok(digest)) => digest,
            (Some(e), _) => {
                store.snapshots().abort(prepared)?;
                return Err(e);
            }
            (None, Err(source)) => {
                store.snapshots().abort(prepared)?;
                return Err(HttpError::Write { path, source });
            }
        };
        let record = UrlRecord {
            etag,
            digest: digest.to_string(),
            last_modified,
            filename,
        };
        if let Some(previous) = previous {
            if previous.record.digest == record.digest
                && previous.record.filename == record.filename
                && previous.record.last_modified == record.last_modified
            {
                // The same bytes again (a server without ETags): keep the stored snapshot.
                store.snapshots().abort(prepared)?;
                let resolved = Resolved {
                    record,
                    snapshot: previous.snapshot,
                };
                remember_download(store, &req.url_key(), &resolved)?;
                return Ok(resolved);
            }
        }
        let committed = store.snapshots().commit(prepared, None)?;
        let resolved = Resolved {
            record,
            snapshot: committed.id,
        };
        remember_download(store, &req.url_key(), &resolved)?;
        Ok(resolved)
    }
}

/// An error with its chain of causes, `: `-joined (reqwest's own text omits them).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        next = cause.source();
    }
    text
}

/// The URL's last download, if its snapshot still exists.
fn previous_download(
    store: &Store,
    url_key: &[u8; 32],
    lease: &Lease,
) -> Result<Option<Resolved>, HttpError> {
    let Some(found) = store.cache().get(url_key, Some(lease))? else {
        return Ok(None);
    };
    let Some(snapshot) = found.value.snapshot else {
        return Ok(None);
    };
    if store.snapshots().get(&snapshot)?.is_none() {
        return Ok(None);
    }
    // An unreadable record (another version) is only a lost optimisation.
    Ok(serde_json::from_slice::<UrlRecord>(&found.value.payload)
        .ok()
        .map(|record| Resolved { record, snapshot }))
}

fn remember_download(
    store: &Store,
    url_key: &[u8; 32],
    resolved: &Resolved,
) -> Result<(), HttpError> {
    let value = CacheValue {
        snapshot: Some(resolved.snapshot.clone()),
        blobs: Vec::new(),
        payload: serde_json::to_vec(&resolved.record).unwrap_or_default(),
    };
    store.cache().put(url_key, &value)?;
    Ok(())
}

/// Writes the chunks of a body to a new file at `path`, then sets its mode and mtime;
/// returns the sha256 of the bytes.
fn write_body<B: AsRef<[u8]>>(
    path: &Path,
    mode: u32,
    mtime: SystemTime,
    mut chunks: tokio::sync::mpsc::Receiver<B>,
) -> io::Result<strata_oci::Digest> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 17, file));
    while let Some(chunk) = chunks.blocking_recv() {
        out.write_all(chunk.as_ref())?;
    }
    let (buffered, digest, _) = out.finish();
    let file: File = buffered.into_inner().map_err(|e| e.into_error())?;
    // Set after writing: the umask does not apply to an explicit chmod.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.set_times(FileTimes::new().set_accessed(mtime).set_modified(mtime))?;
    Ok(digest)
}

/// `--checksum` as BuildKit accepts it for URLs: a sha256 digest.
fn validate_checksum(checksum: &str) -> Result<(), HttpError> {
    let invalid = |reason| HttpError::InvalidChecksum {
        checksum: checksum.to_string(),
        reason,
    };
    let Some((algorithm, hex)) = checksum.split_once(':') else {
        return Err(invalid("no algorithm"));
    };
    if algorithm != "sha256" {
        return Err(invalid("unsupported digest algorithm"));
    }
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid("not 64 lowercase hex digits"));
    }
    Ok(())
}

/// A weak ETag compares equal to its strong form (BuildKit strips `W/`).
fn etag_value(etag: &str) -> String {
    etag.strip_prefix("W/").unwrap_or(etag).to_string()
}

/// The downloaded file's name, as BuildKit's getFileName: the op's name, else the
/// `Content-Disposition` filename, else the URL path's last element, each made safe.
fn file_name(url: &str, manual: &str, content_disposition: Option<&str>) -> String {
    if !manual.is_empty() {
        return safe_file_name(manual);
    }
    if let Some(name) = content_disposition.and_then(disposition_filename) {
        if !name.ends_with('/') {
            let base = name.rsplit('/').next().unwrap_or_default();
            if !base.is_empty() {
                return safe_file_name(base);
            }
        }
    }
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    safe_file_name(base)
}

/// BuildKit's SafeFileName: the last path element, or `download` when that is empty, `.`,
/// `..` or holds a control character.
fn safe_file_name(name: &str) -> String {
    let trimmed = name.trim();
    let base = trimmed
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if base.is_empty() || base == "." || base == ".." || base.chars().any(char::is_control) {
        return "download".to_string();
    }
    base.to_string()
}

/// The `filename` parameter of a `Content-Disposition` value (quoted or token form).
fn disposition_filename(value: &str) -> Option<String> {
    let mut params = value.split(';');
    params.next()?; // The disposition type.
    for param in params {
        let (key, raw) = param.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("filename") {
            continue;
        }
        let raw = raw.trim();
        let value = match raw.strip_prefix('"') {
            Some(quoted) => {
                let mut out = String::new();
                let mut chars = quoted.chars();
                loop {
                    match chars.next()? {
                        '\\' => out.push(chars.next()?),
                        '"' => break,
                        c => out.push(c),
                    }
                }
                out
            }
            None => raw.to_string(),
        };
        return (!value.is_empty()).then_some(value);
    }
    None
}

/// An HTTP date in any of the three forms Go's `http.ParseTime` accepts: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and
/// asctime (`Sun Nov  6 08:49:37 1994`).
fn parse_http_date(text: &str) -> Option<SystemTime> {
    let fields: Vec<&str> = text
        .split([' ', ',', '-'])
        .filter(|f| !f.is_empty())
        .collect();
    let (day, month, year, time) = match fields.as_slice() {
        [_, day, month, year, time, "GMT"] => (*day, *month, *year, *time),
        [_, month, day, time, year] => (*day, *month, *year, *time),
        _ => return None,
    };
    let day: u32 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == month)? as u32
        + 1;
    let mut year: i64 = year.parse().ok()?;
    if year < 100 {
        // RFC 850's two-digit years, as Go reads them.
        year += if year >= 69 { 1900 } else { 2000 };
    }
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + (h * 3600 + m * 60 + s) as i64;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t: SystemTime) -> u64 {
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        let want = 784_111_777; // 1994-11-06T08:49:37Z
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(text).map(secs), Some(want), "{text}");
        }
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").map(secs),
            Some(1_445_412_480)
        );
        for bad in [
            "",
            "yesterday",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn file_name_like_buildkit() {
        assert_eq!(file_name("http://h/a/b.tar.gz?x=1#f", "", None), "b.tar.gz");
        assert_eq!(file_name("http://h/a/b", "given", None), "given");
        assert_eq!(file_name("http://h/", "", None), "download");
        assert_eq!(file_name("http://h", "", None), "download");
        assert_eq!(
            file_name(
                "http://h/x",
                "",
                Some("attachment; filename=\"r\\\"e.txt\"")
            ),
            "r\"e.txt"
        );
        assert_eq!(
            file_name(
                "http://h/x",
                "",
                Some("attachment; filename=../../etc/passwd")
            ),
            "passwd"
        );
        assert_eq!(
            file_name("http://h/x", "", Some("attachment; filename=dir/")),
            "x"
        );
        assert_eq!(file_name("http://h/x", "", Some("inline")), "x");
        assert_eq!(safe_file_name(".."), "download");
        assert_eq!(safe_file_name("a\u{7}b"), "download");
    }

    #[test]
    fn checksums_must_be_sha256() {
        let hex = "a".repeat(64);
        assert!(validate_checksum(&format!("sha256:{hex}")).is_ok());
        for bad in [hex.clone(), format!("md5:{hex}"), "sha256:abc".into()] {
            let e = validate_checksum(&bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid checksum"), "{e}");
        }
    }

    #[test]
    fn weak_etags_match_strong_ones() {
        assert_eq!(etag_value("W/\"x\""), "\"x\"");
        assert_eq!(etag_value("\"x\""), "\"x\"");
    }
}
