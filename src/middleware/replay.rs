//! Which requests can be sent a second time after a 401.

use http_body::Body;

/// Decides, before a request is sent, whether it can be sent again if the answer is 401.
///
/// A request body is usually a stream that the first attempt consumes, so a retry needs a copy
/// made up front. The layer asks the policy for that copy; when it gets none, a 401 answer is
/// returned to the caller as it came.
///
/// Three policies ship:
///
/// - [`EmptyBodies`] (the default): requests whose body is already at its end, such as most
///   `GET` and `DELETE` requests, are retried.
/// - [`CloneBodies`]: bodies that are `Clone`, such as `Full<Bytes>`, are copied and retried.
///   Each copy of a large body costs memory for as long as the request runs.
/// - [`NoReplay`]: nothing is retried.
///
/// ```
/// # use std::convert::Infallible;
/// # use bytes::Bytes;
/// # use http::{Request, Response, StatusCode};
/// # use http_body_util::{BodyExt, Full};
/// # use tower::{service_fn, ServiceExt};
/// use tower_oauth2::{CloneBodies, Error, FetchContext, OAuth2Layer, Token, TokenCache, TokenSource};
/// # struct Fixed;
/// # impl TokenSource for Fixed {
/// #     async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
/// #         Ok(Token::bearer("abc"))
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_oauth2::BoxError> {
/// # let http = service_fn(|request: Request<Full<Bytes>>| async move {
/// #     let body = request.into_body().collect().await.unwrap().to_bytes();
/// #     Ok::<_, Infallible>(Response::new(Full::new(body)))
/// # });
///
/// // `Full<Bytes>` is `Clone`: a POST can be sent again after a 401.
/// let layer = OAuth2Layer::new(TokenCache::new(Fixed)).replay(CloneBodies);
/// let client = tower::ServiceBuilder::new().layer(layer).service(http);
/// let request = Request::post("https://api.example.com/orders").body(Full::from("item=book"))?;
/// let response = client.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::OK);
/// # Ok(())
/// # }
/// ```
///
/// Implement it for a body type of your own to copy it your way; for `reqwest::Request` the
/// three policies above are the ones available (see [`OAuth2Request`](crate::OAuth2Request)).
pub trait ReplayPolicy<B> {
    /// Returns a body to send again in place of `body`, or `None` if it cannot be replayed.
    fn replay_body(&self, body: &B) -> Option<B>;
}

/// Replays requests whose body is empty. The default [`ReplayPolicy`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyBodies;

impl<B> ReplayPolicy<B> for EmptyBodies
where
    B: Body + Default,
{
    fn replay_body(&self, body: &B) -> Option<B> {
        body.is_end_stream().then(B::default)
    }
}

/// Replays requests whose body can be cloned.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneBodies;

impl<B: Clone> ReplayPolicy<B> for CloneBodies {
    fn replay_body(&self, body: &B) -> Option<B> {
        Some(body.clone())
    }
}

/// Never replays a request: every 401 answer reaches the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplay;

impl<B> ReplayPolicy<B> for NoReplay {
    fn replay_body(&self, _body: &B) -> Option<B> {
        None
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Full;

    use super::*;

    #[test]
    fn empty_bodies_replays_only_bodies_at_their_end() {
        assert!(EmptyBodies.replay_body(&Full::new(Bytes::new())).is_some());
        assert!(EmptyBodies.replay_body(&String::new()).is_some());
        assert!(
            EmptyBodies
                .replay_body(&Full::new(Bytes::from("x")))
                .is_none()
        );
    }

    #[test]
    fn clone_bodies_copies_the_body() {
        let body = Full::new(Bytes::from("payload"));
        assert!(CloneBodies.replay_body(&body).is_some());
        assert!(NoReplay.replay_body(&body).is_none());
    }
}
