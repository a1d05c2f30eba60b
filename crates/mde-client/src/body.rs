//! An answer's body read under a cap: what the service (or a proxy) sends is never read
//! whole when it is larger than the call allows.

/// Hands each chunk of a body to `each` while the body stays within `limit` bytes; `false`
/// when it is larger (a declared length over it: nothing is read).
pub(crate) async fn read_chunks(
    response: &mut reqwest::Response,
    limit: usize,
    mut each: impl FnMut(&[u8]),
) -> reqwest::Result<bool> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(false);
    }
    let mut read = 0;
    while let Some(chunk) = response.chunk().await? {
        read += chunk.len();
        if read > limit {
            return Ok(false);
        }
        each(&chunk);
    }
    Ok(true)
}

/// Reads at most `limit` bytes of a body; `false` when there was more.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    let complete = read_chunks(&mut response, limit, |chunk| body.extend_from_slice(chunk)).await?;
    Ok((if complete { body } else { Vec::new() }, complete))
}
