//! Request bodies read within bounds, in size and in time: for the Engine.IO
//! endpoint's polling POSTs and for the admin API alike.

use std::time::Duration;

use bytes::Bytes;

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Larger than allowed.
    #[error("the body is too large")]
    TooLarge,
    /// Not all there within the body timeout.
    #[error("the body did not arrive in time")]
    TimedOut,
    /// The connection failed mid-body.
    #[error("the body could not be read")]
    Broken,
}

/// Reads a whole request body of at most `limit` bytes within `timeout`: a body that
/// trickles in would hold its connection, a task and a descriptor for ever.
pub async fn read_body<B>(body: B, limit: usize, timeout: Duration) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Broken),
        Err(_) => Err(BodyError::TimedOut),
    }
}
