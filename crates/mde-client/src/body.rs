//! An answer's body read under a cap: what the service (or a proxy) sends is never read
//! whole when it is larger than the call allows.

/// Reads at most `limit` bytes of a body; `false` when there was more.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> reqwest::Result<(Vec<u8>, bool)> {
    let length = response.content_length();
    if length.is_some_and(|n| n > limit as u64) {
        return Ok((Vec::new(), false));
    }
    let mut body = Vec::with_capacity(length.unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok((Vec::new(), false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}
