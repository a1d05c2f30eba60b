//! Investigation packages: the link getPackageUri answers, and the download behind it.
//!
//! The link carries its own token in its query ("valid for a short time"), so it is a secret
//! like the bearer token: [`PackageLink`] never shows its query, and no error, log or output
//! of this module holds it. The download host gets no bearer token.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::error::Error;
use crate::operations;

/// The download link of a completed collection, as getPackageUri answers it (the URL in
/// literal quotes, stripped here). `Debug` and `Display` show it without its query.
#[derive(Clone, PartialEq, Eq)]
pub struct PackageLink(reqwest::Url);

impl PackageLink {
    /// Reads getPackageUri's `value`: the URL, in literal double quotes or not.
    pub fn parse(value: &str) -> Result<PackageLink, Error> {
        let unquoted = value.trim().trim_matches('"');
        let url = reqwest::Url::parse(unquoted).map_err(|e| Error::UnexpectedResponse {
            status: Some(200),
            excerpt: format!("the package link is not a URL: {e}"),
        })?;
        let secure = url.scheme() == "https"
            || (url.scheme() == "http" && crate::builder::is_loopback(&url));
        if !secure {
            return Err(Error::UnexpectedResponse {
                status: Some(200),
                excerpt: format!(
                    "the package link is not https: {}",
                    PackageLink(url.clone())
                ),
            });
        }
        Ok(PackageLink(url))
    }

    /// The whole URL, query and token included, for sending it where it belongs.
    pub fn expose(&self) -> &reqwest::Url {
        &self.0
    }
}

impl fmt::Display for PackageLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        write!(
            f,
            "{}://{}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        )?;
        if let Some(port) = url.port() {
            write!(f, ":{port}")?;
        }
        f.write_str(url.path())?;
        if url.query().is_some() {
            f.write_str("?[redacted]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PackageLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackageLink({self})")
    }
}

/// A package saved and verified: where, how big, its SHA-256, and what it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Transfers resumed with `Range` after a cut.
    pub resumed: u32,
    /// New links asked for after one expired.
    pub new_links: u32,
}

/// How much is written between two flushes to the disk while a body arrives.
const FLUSH_EVERY: usize = 4 << 20;

/// The end of a flush started while the body arrived.
async fn finish_flush(
    flush: tokio::task::JoinHandle<std::io::Result<()>>,
    part: &Path,
) -> Result<(), Error> {
    flush
        .await
        .map_err(std::io::Error::other)
        .and_then(|synced| synced)
        .map_err(|e| io(part, e))
}

/// How many transfers one download may take (the first, and resumptions after cuts).
const TRANSFERS: u32 = 8;

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A transport error without the URL: the link's query is a secret.
fn transport(e: reqwest::Error) -> Error {
    Error::transport(e.without_url())
}

/// The hash of what a `.part` already holds, and its length.
fn hash_of(path: &Path) -> Result<(Sha256, u64), Error> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let length = std::io::copy(&mut file, &mut hasher).map_err(|e| io(path, e))?;
    Ok((hasher, length))
}

fn open_part(path: &Path, truncate: bool) -> Result<std::fs::File, Error> {
    let mut options = std::fs::OpenOptions::new();
    options
        .create(true)
        .append(!truncate)
        .write(true)
        .truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Forensic data: readable by its owner only.
        options.mode(0o600);
    }
    options.open(path).map_err(|e| io(path, e))
}

/// A zip archive begins with a local file header and ends with its central directory.
fn looks_like_zip(path: &Path, size: u64) -> Result<bool, Error> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut head = [0u8; 4];
    if size < 22 || file.read_exact(&mut head).is_err() || head != *b"PK\x03\x04" {
        return Ok(false);
    }
    let tail_len = size.min(64 * 1024 + 22);
    file.seek(SeekFrom::End(-(tail_len as i64)))
        .map_err(|e| io(path, e))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.read_to_end(&mut tail).map_err(|e| io(path, e))?;
    Ok(tail.windows(4).any(|w| w == b"PK\x05\x06"))
}

impl Client {
    /// getPackageUri, read as a [`PackageLink`]. A 404 means the collection is not complete
    /// yet (or there is no such action).
    pub async fn package_link(&self, action_id: &str) -> Result<PackageLink, Error> {
        let answer = self
            .send(operations::GetPackageUri {
                id: action_id.to_string(),
            })
            .await?;
        PackageLink::parse(answer.value.expose())
    }

    /// Downloads the package of a completed collection to `dest`, and returns it verified.
    ///
    /// The body is streamed to `dest` + `.part` (memory stays bounded whatever its size),
    /// hashed (SHA-256) as it is written, checked against its declared length and for the
    /// shape of a zip archive, flushed and synced, then renamed to `dest`. A cut transfer
    /// resumes with `Range` where the `.part` ends (also across runs: an existing `.part` is
    /// continued); a link that expired (403 or 404 from the download host) is replaced once
    /// by a new one, within getPackageUri's limits; a body that is not an archive is
    /// discarded and fetched again, once. `link` is one already asked for, if any. An
    /// existing `dest` is never overwritten. The file is created readable by its owner only.
    pub async fn download_package(
        &self,
        action_id: &str,
        link: Option<PackageLink>,
        dest: &Path,
    ) -> Result<Downloaded, Error> {
        self.download(Blob::Package(action_id), link, dest).await
    }

    /// getLiveResponseResultDownloadLink of command `index` of a live response action, read
    /// as a [`PackageLink`] (its query is as secret). A 404: the command has no result (a
    /// PutFile, a command not completed).
    pub async fn live_response_result_link(
        &self,
        action_id: &str,
        index: i32,
    ) -> Result<PackageLink, Error> {
        let answer = self
            .send(operations::GetLiveResponseResultDownloadLink {
                id: action_id.to_string(),
                index,
            })
            .await?;
        PackageLink::parse(answer.value.expose())
    }

    /// Downloads the result of command `index` of a live response action (a GetFile's file,
    /// a RunScript's transcript) to `dest`, as [`Client::download_package`] downloads a
    /// package: `.part`, SHA-256 while streaming, length check, sync, rename, `Range` resume,
    /// one new link when the link expired (links live 30 minutes). Any content is taken.
    /// `link` is one already asked for, if any.
    pub async fn download_live_response_result(
        &self,
        action_id: &str,
        index: i32,
        link: Option<PackageLink>,
        dest: &Path,
    ) -> Result<Downloaded, Error> {
        self.download(Blob::LiveResponseResult(action_id, index), link, dest)
            .await
    }

    /// The transcript of a completed RunScript command (command `index` of a live response
    /// action), read into its type in memory, NULs kept; a link that expired is replaced
    /// once. Save it with [`Client::download_live_response_result`] to keep the bytes.
    pub async fn run_script_transcript(
        &self,
        action_id: &str,
        index: i32,
    ) -> Result<crate::types::RunScriptTranscript, Error> {
        let (mut renewed, mut transfers) = (false, 0);
        let mut link = self.live_response_result_link(action_id, index).await?;
        loop {
            transfers += 1;
            // A cut transfer is tried again, as a download is (a transcript is small).
            let cut = |e: reqwest::Error| (transfers < TRANSFERS).then_some(()).ok_or(e);
            let response = match self.downloads().get(link.expose().clone()).send().await {
                Ok(response) => response,
                Err(e) => {
                    cut(e).map_err(transport)?;
                    continue;
                }
            };
            let status = response.status().as_u16();
            match status {
                200 => {}
                403 | 404 if !renewed => {
                    renewed = true;
                    link = self.live_response_result_link(action_id, index).await?;
                    continue;
                }
                _ => {
                    return Err(Error::UnexpectedResponse {
                        status: Some(status),
                        excerpt: format!("the download host ({link}) answered {status}"),
                    });
                }
            }
            let declared = response.content_length();
            let (body, complete) = match crate::body::read_capped(response, TRANSCRIPT_LIMIT).await
            {
                Ok(read) => read,
                Err(e) => {
                    cut(e).map_err(transport)?;
                    continue;
                }
            };
            if !complete {
                return Err(Error::Download(format!(
                    "the transcript of command {index} of {action_id} is over {TRANSCRIPT_LIMIT} bytes: save it to a file instead"
                )));
            }
            if declared.is_some_and(|n| n != body.len() as u64) && transfers < TRANSFERS {
                continue;
            }
            return serde_json::from_slice(&body).map_err(|e| Error::UnexpectedResponse {
                status: Some(status),
                excerpt: format!(
                    "the transcript of command {index} of {action_id} is not a RunScript transcript: {e}"
                ),
            });
        }
    }

    /// One transfer of `link`'s body, from `offset` on (a `Range` past the start).
    async fn transfer(
        &self,
        link: &PackageLink,
        offset: u64,
    ) -> reqwest::Result<reqwest::Response> {
        let request = self.downloads().get(link.expose().clone());
        match offset {
            0 => request,
            _ => request.header(reqwest::header::RANGE, format!("bytes={offset}-")),
        }
        .send()
        .await
    }

    async fn download(
        &self,
        blob: Blob<'_>,
        link: Option<PackageLink>,
        dest: &Path,
    ) -> Result<Downloaded, Error> {
        let part = part_of(dest)?;
        let mut link = match link {
            Some(link) => link,
            None => blob.link(self).await?,
        };
        let (mut resumed, mut new_links, mut refetched, mut transfers) = (0, 0, false, 0);
        // What an earlier run left in the `.part` is hashed once, here; from then on the hash
        // and the offset follow every byte written, across resumed transfers.
        let (mut hasher, mut offset) = match part.exists() {
            true => hash_of(&part)?,
            false => (Sha256::new(), 0),
        };
        loop {
            transfers += 1;
            let mut response = match self.transfer(&link, offset).await {
                Ok(response) => response,
                Err(e) if transfers < TRANSFERS => {
                    tracing::info!(error = %transport(e), "mde-client: package transfer failed; resuming");
                    resumed += 1;
                    continue;
                }
                Err(e) => return Err(transport(e)),
            };
            let status = response.status().as_u16();
            let total = match reply(&response, offset) {
                // A range asked for and not honoured: start again (the `.part` is truncated
                // when opened below).
                Reply::Whole(total) if offset > 0 => {
                    (hasher, offset) = (Sha256::new(), 0);
                    total
                }
                Reply::Whole(total) => total,
                Reply::Rest(total) => total,
                Reply::Restart => {
                    // Not the part asked for, or asked past the end: what the `.part` holds is
                    // not this package; start again from nothing.
                    std::fs::remove_file(&part).map_err(|e| io(&part, e))?;
                    (hasher, offset) = (Sha256::new(), 0);
                    continue;
                }
                Reply::Expired if new_links == 0 => {
                    tracing::info!(%link, status, "mde-client: the link expired; asking for a new one");
                    link = blob.link(self).await?;
                    new_links += 1;
                    continue;
                }
                Reply::Expired | Reply::Other => {
                    return Err(Error::UnexpectedResponse {
                        status: Some(status),
                        excerpt: format!("the download host ({link}) answered {status}"),
                    });
                }
            };
            let cut = stream(&mut response, &part, (&mut hasher, &mut offset)).await?;
            let short = total.is_some_and(|t| offset < t);
            if cut.is_some() || short {
                if transfers >= TRANSFERS {
                    return Err(cut.unwrap_or_else(|| {
                        Error::Download(format!(
                            "{blob} stayed short of its {} bytes after {TRANSFERS} transfers",
                            total.unwrap_or_default()
                        ))
                    }));
                }
                resumed += 1;
                continue;
            }
            let zip = matches!(blob, Blob::Package(_));
            if total.is_some_and(|t| offset > t) || (zip && !looks_like_zip(&part, offset)?) {
                std::fs::remove_file(&part).map_err(|e| io(&part, e))?;
                (hasher, offset) = (Sha256::new(), 0);
                if refetched {
                    let what = match zip {
                        true => "not a zip archive",
                        false => "longer than its declared length",
                    };
                    return Err(Error::Download(format!("{blob} is {what}, twice")));
                }
                refetched = true;
                continue;
            }
            rename_synced(&part, dest)?;
            let digest = hasher.finalize();
            return Ok(Downloaded {
                path: dest.to_path_buf(),
                size: offset,
                sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
                resumed,
                new_links,
            });
        }
    }
}

/// The `.part` beside `dest`, where a transfer goes until it is whole; `dest` itself must not
/// exist: a package is never overwritten.
fn part_of(dest: &Path) -> Result<PathBuf, Error> {
    if dest.exists() {
        let why = format!("{} exists; a package is never overwritten", dest.display());
        return Err(Error::InvalidInput(why));
    }
    let mut part = dest.as_os_str().to_owned();
    part.push(".part");
    Ok(PathBuf::from(part))
}

/// What the download host's answer means for a transfer from `offset`.
enum Reply {
    /// The whole body (200), of this length when given.
    Whole(Option<u64>),
    /// The rest from `offset` (206), of a whole of this length when given.
    Rest(Option<u64>),
    /// Another part than asked for, or a range past the end (416): start again.
    Restart,
    /// The link expired (403, 404).
    Expired,
    /// Anything else.
    Other,
}

fn reply(response: &reqwest::Response, offset: u64) -> Reply {
    match response.status().as_u16() {
        200 => Reply::Whole(response.content_length()),
        206 => match content_range(response) {
            Some((start, total)) if start == offset => Reply::Rest(total),
            _ => Reply::Restart,
        },
        403 | 404 => Reply::Expired,
        416 => Reply::Restart,
        _ => Reply::Other,
    }
}

/// A 206's `Content-Range`: where the part starts, and the whole length when given.
fn content_range(response: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let range = response.headers().get(reqwest::header::CONTENT_RANGE)?;
    let (span, total) = range
        .to_str()
        .ok()?
        .strip_prefix("bytes ")?
        .split_once('/')?;
    let start = span.split('-').next()?.parse::<u64>().ok()?;
    Some((start, total.parse::<u64>().ok()))
}

/// Writes the body into the `.part` (truncated first when nothing of it counts), the hash
/// and the offset following every byte, flushed to disk as it arrives and synced at its end;
/// the transport error that cut it, if one did.
async fn stream(
    response: &mut reqwest::Response,
    part: &Path,
    (hasher, offset): (&mut Sha256, &mut u64),
) -> Result<Option<Error>, Error> {
    let mut file = open_part(part, *offset == 0)?;
    let mut cut = None;
    // The disk is flushed as the body arrives, on a blocking thread, a few MiB at a time:
    // the sync that ends the transfer then waits for the last few only.
    let mut flushing: Option<tokio::task::JoinHandle<std::io::Result<()>>> = None;
    let mut unflushed = 0usize;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                file.write_all(&chunk).map_err(|e| io(part, e))?;
                hasher.update(&chunk);
                *offset += chunk.len() as u64;
                unflushed += chunk.len();
                if unflushed >= FLUSH_EVERY && flushing.as_ref().is_none_or(|f| f.is_finished()) {
                    if let Some(done) = flushing.take() {
                        finish_flush(done, part).await?;
                    }
                    let copy = file.try_clone().map_err(|e| io(part, e))?;
                    flushing = Some(tokio::task::spawn_blocking(move || copy.sync_data()));
                    unflushed = 0;
                }
            }
            Ok(None) => break,
            Err(e) => {
                cut = Some(transport(e));
                break;
            }
        }
    }
    if let Some(done) = flushing.take() {
        finish_flush(done, part).await?;
    }
    file.flush().map_err(|e| io(part, e))?;
    // The data and the length: what reading the file back needs (fdatasync).
    file.sync_data().map_err(|e| io(part, e))?;
    Ok(cut)
}

/// Renames the whole `.part` to `dest`, then syncs the folder: the rename itself survives a
/// power cut.
fn rename_synced(part: &Path, dest: &Path) -> Result<(), Error> {
    std::fs::rename(part, dest).map_err(|e| io(dest, e))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The most a transcript read into memory may hold.
const TRANSCRIPT_LIMIT: usize = 64 << 20;

/// What a download fetches: a collection's package, or a live response command's result.
#[derive(Clone, Copy, Debug)]
enum Blob<'a> {
    Package(&'a str),
    LiveResponseResult(&'a str, i32),
}

impl Blob<'_> {
    /// A new link to it.
    async fn link(self, client: &Client) -> Result<PackageLink, Error> {
        match self {
            Blob::Package(action) => client.package_link(action).await,
            Blob::LiveResponseResult(action, index) => {
                client.live_response_result_link(action, index).await
            }
        }
    }
}

impl fmt::Display for Blob<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blob::Package(action) => write!(f, "the package of {action}"),
            Blob::LiveResponseResult(action, index) => {
                write!(f, "the result of command {index} of {action}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_never_shows_its_query() {
        let value = "\"https://userrequests-us.securitycenter.windows.com:443/safedownload/WDATP_Investigation_Package.zip?token=gbDyj7y%2fbWGAZjn2sFiZ%3d%3d\"";
        let link = PackageLink::parse(value).unwrap();
        for shown in [format!("{link}"), format!("{link:?}")] {
            assert!(
                !shown.contains("gbDyj7y") && !shown.contains("token"),
                "{shown}"
            );
            assert!(shown.contains("userrequests-us.securitycenter.windows.com/safedownload/WDATP_Investigation_Package.zip?[redacted]"), "{shown}");
        }
        assert!(link.expose().as_str().contains("token=gbDyj7y"));
        assert!(PackageLink::parse("\"not a url\"").is_err());
        let plain = PackageLink::parse("\"http://example.com/p.zip?token=secret\"").unwrap_err();
        assert!(!plain.to_string().contains("secret"), "{plain}");
        assert!(PackageLink::parse("http://127.0.0.1:9/p.zip?token=t").is_ok());
    }
}
