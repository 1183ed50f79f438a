//! The device authorization grant (RFC 8628): the device authorization endpoint hands out a
//! device code and a user code; the token endpoint answers polls with that device code
//! `authorization_pending` until the user decides (as [`DeviceUser`] scripts), then a token
//! and a refresh token, or `access_denied`; `expired_token` once the code's lifetime passed.

use std::{collections::HashMap, time::Duration};

use http::{Request, Response, StatusCode};
use tokio::time::Instant;

use super::{
    AuthServer, Model, Received,
    wire::{described, json, oauth_error, read, respond},
};
use crate::Body;

/// The `grant_type` of a device's token request.
pub(crate) const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What the user at the verification URI does with each device code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceUser {
    /// Never decides: every poll is `authorization_pending` until the code expires.
    Away,
    /// Approves once the device has polled this many times and been told to wait.
    ApprovesAfter(usize),
    /// Denies once the device has polled this many times and been told to wait.
    DeniesAfter(usize),
}

/// The settings of the device grant, and the codes it has handed out.
#[derive(Debug)]
pub(super) struct Devices {
    /// `interval` in answers, in seconds; `None` leaves it out.
    interval: Option<u64>,
    lifetime: Duration,
    complete_uri: bool,
    user: DeviceUser,
    codes: HashMap<String, Device>,
    issued: usize,
}

#[derive(Debug)]
struct Device {
    user_code: String,
    expires: Instant,
    /// Polls answered `authorization_pending` so far.
    pending: usize,
    /// The user's decision, once made through [`AuthServer::approve_device`] or
    /// [`AuthServer::deny_device`].
    decision: Option<bool>,
}

impl Default for Devices {
    fn default() -> Self {
        Self {
            interval: Some(5),
            lifetime: Duration::from_secs(600),
            complete_uri: false,
            user: DeviceUser::Away,
            codes: HashMap::new(),
            issued: 0,
        }
    }
}

impl AuthServer {
    /// The device authorization answers say `interval` (seconds), or nothing when `None`
    /// (clients then wait 5 seconds). Default: 5.
    pub fn device_interval(self, interval: Option<u64>) -> Self {
        self.model().devices.interval = interval;
        self
    }

    /// Device codes live `lifetime` (10 minutes unless set), and answers say so in
    /// `expires_in`.
    pub fn device_lifetime(self, lifetime: Duration) -> Self {
        self.model().devices.lifetime = lifetime;
        self
    }

    /// The device authorization answers also carry `verification_uri_complete`.
    pub fn device_complete_uri(self) -> Self {
        self.model().devices.complete_uri = true;
        self
    }

    /// What the user does with every device code. Default: [`DeviceUser::Away`].
    pub fn device_user(self, user: DeviceUser) -> Self {
        self.model().devices.user = user;
        self
    }

    /// The user approves the device code shown as `user_code`.
    pub fn approve_device(&self, user_code: &str) {
        self.model().devices.decide(user_code, true);
    }

    /// The user denies the device code shown as `user_code`.
    pub fn deny_device(&self, user_code: &str) {
        self.model().devices.decide(user_code, false);
    }

    pub(super) async fn answer_device_authorization<B: http_body::Body>(
        &self,
        request: Request<B>,
    ) -> Response<Body> {
        let Some(received) = read(request).await else {
            return respond(StatusCode::BAD_REQUEST, "unreadable body");
        };
        let mut model = self.model();
        if let Some(answer) = model.record(&received) {
            return answer;
        }
        if let Err(why) = model.authenticate(&received) {
            return described(StatusCode::UNAUTHORIZED, "invalid_client", &why);
        }
        model.devices.authorize()
    }
}

impl Devices {
    fn decide(&mut self, user_code: &str, approved: bool) {
        if let Some(device) = self.codes.values_mut().find(|d| d.user_code == user_code) {
            device.decision = Some(approved);
        }
    }

    /// Hands out the next device code.
    fn authorize(&mut self) -> Response<Body> {
        self.issued += 1;
        let n = self.issued;
        let (device_code, user_code) = (format!("device-code-{n}"), format!("USER-{n}"));
        let uri = "https://auth.test/device";
        let mut body = serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": self.lifetime.as_secs(),
        });
        if let Some(interval) = self.interval {
            body["interval"] = interval.into();
        }
        if self.complete_uri {
            body["verification_uri_complete"] = format!("{uri}?user_code={user_code}").into();
        }
        let device = Device {
            user_code,
            expires: Instant::now() + self.lifetime,
            pending: 0,
            decision: None,
        };
        self.codes.insert(device_code, device);
        json(StatusCode::OK, body.to_string())
    }
}

impl Model {
    /// Answers a device's poll (RFC 8628 section 3.5).
    pub(super) fn poll_device(&mut self, request: &Received) -> Response<Body> {
        let code = request.form.get("device_code").cloned().unwrap_or_default();
        let user = self.devices.user;
        let Some(device) = self.devices.codes.get_mut(&code) else {
            return described(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "unknown device code",
            );
        };
        if Instant::now() >= device.expires {
            return oauth_error(StatusCode::BAD_REQUEST, "expired_token");
        }
        let decision = device.decision.or(match user {
            DeviceUser::ApprovesAfter(polls) if device.pending >= polls => Some(true),
            DeviceUser::DeniesAfter(polls) if device.pending >= polls => Some(false),
            _ => None,
        });
        match decision {
            None => {
                device.pending += 1;
                oauth_error(StatusCode::BAD_REQUEST, "authorization_pending")
            }
            Some(false) => oauth_error(StatusCode::BAD_REQUEST, "access_denied"),
            Some(true) => {
                // A device code is good for one token.
                self.devices.codes.remove(&code);
                self.issue(true, "Bearer", "")
            }
        }
    }
}
