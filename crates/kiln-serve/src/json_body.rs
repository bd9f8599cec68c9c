//! [`JsonBody`]: axum's JSON extractor with the server's error body on rejection.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body of type `T`. A missing `Content-Type: application/json` (415), a body
/// that is not JSON or not UTF-8 (400), values of the wrong types (422) and a body over the
/// size limit (413) are answered as [`ApiError`]s, like every other error.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}
