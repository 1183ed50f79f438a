//! The device authorization endpoint's answer (RFC 8628 section 3.2), and the cancellation of
//! the polling it starts.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::{Map, Value};
use tokio::{sync::Notify, time::Instant};

use crate::{
    Error, ErrorKind, Secret,
    endpoint::parse::{expires_in, invalid, optional_string},
};

/// The interval when the server names none (RFC 8628 section 3.2).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The shortest interval taken from a server: one that says 0 must not make the client spin.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What the device authorization endpoint answered: what to show the user, and the device
/// code to poll with. Made by [`DeviceCode::start`](super::DeviceCode::start).
///
/// Clones share one cancellation: [`cancel`](Self::cancel) on any of them stops
/// [`DeviceCode::wait_for_user`](super::DeviceCode::wait_for_user) for all.
///
/// `Debug` shows everything but the device code.
#[derive(Clone)]
pub struct DeviceAuthorization {
    device_code: Secret,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: Duration,
    interval: Duration,
    /// When the request that got this answer was sent: `expires_in` counts from there.
    started: Instant,
    cancel: Arc<Cancel>,
}

#[derive(Default)]
struct Cancel {
    cancelled: AtomicBool,
    notify: Notify,
}

impl DeviceAuthorization {
    /// Reads the endpoint's answer, sent at `started`.
    pub(super) fn read(mut fields: Map<String, Value>, started: Instant) -> Result<Self, Error> {
        let mut text = |name: &str| optional_string(fields.remove(name), name);
        let missing = |name: &str| invalid(&format!("`{name}` is missing"));
        let device_code = text("device_code")?.ok_or_else(|| missing("device_code"))?;
        let user_code = text("user_code")?.ok_or_else(|| missing("user_code"))?;
        // Some servers (Google's among them) name it as the RFC's drafts did.
        let verification_uri = match text("verification_uri")? {
            Some(uri) => uri,
            None => text("verification_url")?.ok_or_else(|| missing("verification_uri"))?,
        };
        let verification_uri_complete = text("verification_uri_complete")?;
        let expires_in =
            expires_in(fields.remove("expires_in"))?.ok_or_else(|| missing("expires_in"))?;
        let interval = interval_seconds(fields.remove("interval"))?
            .map_or(DEFAULT_INTERVAL, |interval| interval.max(MIN_INTERVAL));
        Ok(Self {
            device_code: Secret::new(device_code),
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_in,
            interval,
            started,
            cancel: Arc::default(),
        })
    }

    /// Returns the code the user enters at the verification URI.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Returns the URI where the user enters the code (`verification_uri`).
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// Returns the URI that carries the code already (`verification_uri_complete`), for a
    /// QR code or a link, when the server sent one. Show the user code too: the user should
    /// check it against the one on the device.
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// Returns how long the codes are valid, from when they were asked for.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// Returns the time between polls the server asked for (5 seconds when it named none;
    /// at least 1 second).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Returns the device code.
    pub fn device_code(&self) -> &Secret {
        &self.device_code
    }

    /// Stops the polling of [`DeviceCode::wait_for_user`](super::DeviceCode::wait_for_user)
    /// for this authorization, now or whenever it starts: it returns an
    /// [`ErrorKind::AuthorizationFailed`] error. Nothing is sent to the server, which lets
    /// the device code expire.
    pub fn cancel(&self) {
        self.cancel.cancelled.store(true, Ordering::SeqCst);
        self.cancel.notify.notify_waiters();
    }

    /// Returns `true` once [`cancel`](Self::cancel) was called on this or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.cancelled.load(Ordering::SeqCst)
    }

    /// When the codes expire.
    pub(super) fn deadline(&self) -> Instant {
        self.started + self.expires_in
    }

    /// Waits until `at`, or fails once cancelled.
    pub(super) async fn sleep_until(&self, at: Instant) -> Result<(), Error> {
        // Registered before the flag is read, so a cancel in between still wakes it.
        let notified = self.cancel.notify.notified();
        if self.is_cancelled() {
            return Err(cancelled());
        }
        match tokio::time::timeout_at(at, notified).await {
            Ok(()) => Err(cancelled()),
            Err(_) => Ok(()),
        }
    }
}

/// `interval` as seconds, read as `expires_in` is.
fn interval_seconds(value: Option<Value>) -> Result<Option<Duration>, Error> {
    expires_in(value).map_err(|_| invalid("`interval` is not a number of seconds"))
}

fn cancelled() -> Error {
    Error::new(ErrorKind::AuthorizationFailed).with_detail("the device sign-in was cancelled")
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &self.device_code)
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("verification_uri_complete", &self.verification_uri_complete)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
