//! The download host behind getPackageUri: links shaped like the documented one
//! (`/safedownload/WDATP_Investigation_Package.zip?token=…`), each expiring after the
//! configured lifetime (403 afterwards, 404 for a token never issued), serving a real zip
//! archive per completed collection, with `Range`, and with the faults asked for.
//!
//! Each archive is written once, on its first download, to the simulator's temporary folder
//! and served from there in chunks: memory stays flat whatever `--package-size` says.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The path of every link.
pub const PATH: &str = "/safedownload/WDATP_Investigation_Package.zip";

/// A fault the download host injects, on a seeded share of downloads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// The connection is dropped halfway through the body (rarely, on a starved machine,
    /// before the head leaves).
    Drop,
    /// The body comes slowly: a pause of 50 ms (real time) between chunks.
    Slow,
    /// The body is whole but not the archive: its first bytes are overwritten.
    Corrupt,
}

/// Faults and the share of downloads each hits, e.g. `drop:0.2,slow:0.1,corrupt:0.05`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults(pub Vec<(Fault, f64)>);

impl std::str::FromStr for Faults {
    type Err = String;
    fn from_str(text: &str) -> Result<Faults, String> {
        let names = [
            ("drop", Fault::Drop),
            ("slow", Fault::Slow),
            ("corrupt", Fault::Corrupt),
        ];
        shares(text, ("fault", "drop:0.2"), &names, str::eq).map(Faults)
    }
}

/// `NAME:SHARE,...` read as what each name stands for and its share (0 to 1). `names` are
/// those allowed, compared by `same`; `what` and an example say in an error what is asked.
pub(crate) fn shares<T: Copy>(
    text: &str,
    (what, example): (&str, &str),
    names: &[(&str, T)],
    same: fn(&str, &str) -> bool,
) -> Result<Vec<(T, f64)>, String> {
    let mut shares = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let upper = what.to_uppercase();
        let (name, share) = part
            .split_once(':')
            .ok_or_else(|| format!("{part:?}: write {upper}:SHARE, e.g. {example}"))?;
        let Some((_, value)) = names.iter().find(|(n, _)| same(n, name.trim())) else {
            let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            let (last, rest) = known.split_last().unwrap_or((&"", &[]));
            return Err(format!(
                "unknown {what} {:?}: {} or {last}",
                name.trim(),
                rest.join(", ")
            ));
        };
        let share: f64 = share
            .trim()
            .parse()
            .ok()
            .filter(|s| (0.0..=1.0).contains(s))
            .ok_or_else(|| format!("{part:?}: the share is a number from 0 to 1"))?;
        shares.push((*value, share));
    }
    Ok(shares)
}

/// A number from 0 to 1, the same for the same seed and parts: the simulator's deterministic
/// dice (FNV-1a, then splitmix64 to spread it).
pub fn dice(seed: u64, parts: &[&str]) -> f64 {
    let bytes = parts.iter().flat_map(|part| part.bytes().chain([0xff]));
    (splitmix(fnv1a(seed, bytes)) >> 11) as f64 / (1u64 << 53) as f64
}

/// The FNV-1a hash of `bytes`, its offset basis mixed with `seed`.
pub(crate) fn fnv1a(seed: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(0xcbf2_9ce4_8422_2325 ^ seed, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// One step of splitmix64: `x` moved on by the golden gamma, then mixed.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What a link was issued for.
#[derive(Clone, Debug)]
struct Link {
    action_id: String,
    machine_id: String,
    expires: Duration,
    /// A live response result, written when its link was made; `None` for a package.
    file: Option<PathBuf>,
    content_type: &'static str,
}

/// How long a live response result's link works: "valid for 30 minutes"
/// (get-live-response-result.md).
pub const RESULT_LINK_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The links issued and the archives written.
#[derive(Debug)]
pub struct Packages {
    dir: tempfile::TempDir,
    size: u64,
    lifetime: Duration,
    seed: u64,
    faults: Faults,
    links: Mutex<HashMap<String, Link>>,
    /// Downloads started per action, to roll the fault dice per attempt.
    attempts: Mutex<HashMap<String, u64>>,
    /// The archive of each action, written once.
    written: Mutex<HashMap<String, std::sync::Arc<tokio::sync::OnceCell<PathBuf>>>>,
}

impl Packages {
    /// A store writing to a new temporary folder.
    pub fn new(
        size: u64,
        lifetime: Duration,
        seed: u64,
        faults: Faults,
    ) -> std::io::Result<Packages> {
        Ok(Packages {
            dir: tempfile::Builder::new()
                .prefix("mde-sim-packages-")
                .tempdir()?,
            size,
            lifetime,
            seed,
            faults,
            links: Mutex::default(),
            attempts: Mutex::default(),
            written: Mutex::default(),
        })
    }

    /// A new link to the package of a completed collection, valid from `now` for the lifetime.
    pub fn link(&self, base_url: &str, action_id: &str, machine_id: &str, now: Duration) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let link = Link {
            action_id: action_id.to_string(),
            machine_id: machine_id.to_string(),
            expires: now + self.lifetime,
            file: None,
            content_type: "application/zip",
        };
        lock(&self.links).insert(token.clone(), link);
        format!("{base_url}{PATH}?token={token}")
    }

    /// A new link to a live response result (`name` tells results apart: the action and the
    /// command's index), served like a package (ranges, faults) for
    /// [`RESULT_LINK_LIFETIME`]; the result is written once.
    pub fn result_link(
        &self,
        base_url: &str,
        (name, machine_id): (&str, &str),
        (content, content_type): (&[u8], &'static str),
        now: Duration,
    ) -> std::io::Result<String> {
        let path = self.dir.path().join(format!("{name}.result"));
        if !path.exists() {
            std::fs::write(&path, content)?;
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let link = Link {
            action_id: name.to_string(),
            machine_id: machine_id.to_string(),
            expires: now + RESULT_LINK_LIFETIME,
            file: Some(path),
            content_type,
        };
        lock(&self.links).insert(token.clone(), link);
        Ok(format!("{base_url}{PATH}?token={token}"))
    }

    /// The archive of an action, written on first use (off the async threads: the first
    /// downloads of different actions do not wait for each other).
    async fn archive(&self, link: &Link) -> std::io::Result<PathBuf> {
        let cell = lock(&self.written)
            .entry(link.action_id.clone())
            .or_default()
            .clone();
        let write = || async {
            let path = self.dir.path().join(format!("{}.zip", link.action_id));
            let (machine, action, size) =
                (link.machine_id.clone(), link.action_id.clone(), self.size);
            tokio::task::spawn_blocking(move || {
                write_archive(&path, &machine, &action, size).map(|()| path)
            })
            .await
            .map_err(std::io::Error::other)?
        };
        cell.get_or_try_init(write).await.cloned()
    }

    /// Answers a download: the token's archive (or the asked range of it), 403 for an
    /// expired link, 404 for a token never issued.
    pub async fn serve(&self, query: Option<&str>, headers: &HeaderMap, now: Duration) -> Response {
        let token = query
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v)
            });
        let link = token.and_then(|t| lock(&self.links).get(&t).cloned());
        let Some(link) = link else {
            return ApiError::not_found("No package at this link").into_response();
        };
        if now >= link.expires {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "AuthenticationFailed",
                "The link has expired",
            )
            .into_response();
        }
        let written = match &link.file {
            Some(file) => Ok(file.clone()),
            None => self.archive(&link).await,
        };
        let path = match written {
            Ok(path) => path,
            Err(e) => {
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    e.to_string(),
                )
                .into_response();
            }
        };
        let total = self.archive_len(&path);
        let range = headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(|r| parse_range(r, total));
        let (start, end, status) = match range {
            None => (0, total, StatusCode::OK),
            Some(Some((start, end))) => (start, end, StatusCode::PARTIAL_CONTENT),
            Some(None) => {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return response;
            }
        };
        let attempt = {
            let mut attempts = lock(&self.attempts);
            let n = attempts.entry(link.action_id.clone()).or_default();
            *n += 1;
            *n
        };
        // By machine, not by the action's random id: the same seed, the same faults.
        let roll = dice(self.seed, &[&link.machine_id, &attempt.to_string()]);
        let mut fault = None;
        let mut threshold = 0.0;
        for (kind, share) in &self.faults.0 {
            threshold += share;
            if roll < threshold {
                fault = Some(*kind);
                break;
            }
        }
        let body = Body::from_stream(chunks(path, start, end, fault));
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(link.content_type),
        );
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(v) = HeaderValue::from_str(&(end - start).to_string()) {
            headers.insert(header::CONTENT_LENGTH, v);
        }
        if status == StatusCode::PARTIAL_CONTENT
            && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", end - 1))
        {
            headers.insert(header::CONTENT_RANGE, v);
        }
        response
    }

    fn archive_len(&self, path: &PathBuf) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `bytes=START-` or `bytes=START-END` (one range) within `total`: the half-open range.
fn parse_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => total,
        e => e.parse::<u64>().ok()?.saturating_add(1).min(total),
    };
    (start < end && start < total).then_some((start, end))
}

const CHUNK: usize = 64 * 1024;

/// The bytes `start..end` of the file, in chunks; a dropped connection ends with an error
/// halfway, a slow one pauses between chunks.
fn chunks(
    path: PathBuf,
    start: u64,
    end: u64,
    fault: Option<Fault>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    let cut = match fault {
        Some(Fault::Drop) => start + (end - start) / 2,
        _ => end,
    };
    futures_util::stream::unfold((None::<std::fs::File>, start), move |(file, at)| {
        let path = path.clone();
        async move {
            if at >= end {
                return None;
            }
            if at >= cut {
                let e = std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "dropped on purpose",
                );
                return Some((Err(e), (file, end)));
            }
            if fault == Some(Fault::Slow) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let result = tokio::task::spawn_blocking(
                move || -> std::io::Result<(std::fs::File, Vec<u8>)> {
                    let mut file = match file {
                        Some(f) => f,
                        None => {
                            let mut f = std::fs::File::open(&path)?;
                            f.seek(SeekFrom::Start(at))?;
                            f
                        }
                    };
                    let len = (cut.min(end) - at).min(CHUNK as u64) as usize;
                    let mut buf = vec![0; len];
                    file.read_exact(&mut buf)?;
                    Ok((file, buf))
                },
            )
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match result {
                Ok((file, mut buf)) => {
                    if fault == Some(Fault::Corrupt) && at == 0 {
                        buf.iter_mut().take(4).for_each(|b| *b = b'X');
                    }
                    let next = at + buf.len() as u64;
                    Some((Ok(Bytes::from(buf)), (Some(file), next)))
                }
                Err(e) => Some((Err(e), (None, end))),
            }
        }
    })
}

/// A real zip archive of about `size` bytes: a collection summary naming the machine and the
/// action, and deterministic filler standing in for the collected evidence.
fn write_archive(
    path: &PathBuf,
    machine_id: &str,
    action_id: &str,
    size: u64,
) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    zip.start_file("CollectionSummaryReport.txt", options)?;
    writeln!(
        zip,
        "Investigation package (simulated)\nMachine: {machine_id}\nAction: {action_id}"
    )?;
    zip.start_file(
        "Processes/processes.bin",
        options.large_file(size >= u32::MAX as u64),
    )?;
    let mut state = dice(0, &[machine_id, action_id]).to_bits();
    let mut left = size.saturating_sub(512);
    let mut block = [0u8; 8192];
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state = splitmix(state);
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        zip.write_all(&block[..n])?;
        left -= n as u64;
    }
    zip.finish()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_faults_are_read_as_written() {
        assert_eq!(parse_range("bytes=0-", 10), Some((0, 10)));
        assert_eq!(parse_range("bytes=4-5", 10), Some((4, 6)));
        assert_eq!(parse_range("bytes=4-100", 10), Some((4, 10)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
        let faults: Faults = "drop:0.2, slow:0.1".parse().unwrap();
        assert_eq!(faults.0, [(Fault::Drop, 0.2), (Fault::Slow, 0.1)]);
        assert!("drop".parse::<Faults>().is_err());
        assert!("melt:0.1".parse::<Faults>().is_err());
        assert!("drop:2".parse::<Faults>().is_err());
        assert_eq!(dice(7, &["a", "b"]), dice(7, &["a", "b"]));
        assert_ne!(dice(7, &["a", "b"]), dice(8, &["a", "b"]));
    }

    #[test]
    fn an_archive_is_a_valid_zip_of_the_size_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.zip");
        write_archive(&path, "m1", "a1", 200_000).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert!((199_000..201_000).contains(&len), "{len}");
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        let mut summary = String::new();
        archive
            .by_name("CollectionSummaryReport.txt")
            .unwrap()
            .read_to_string(&mut summary)
            .unwrap();
        assert!(summary.contains("m1") && summary.contains("a1"));
        // The same machine and action give the same bytes.
        let again = dir.path().join("q.zip");
        write_archive(&again, "m1", "a1", 200_000).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&again).unwrap()
        );
    }
}
