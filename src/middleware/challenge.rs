//! `WWW-Authenticate` challenges (RFC 9110 section 11.6.1), read to decide whether a new bearer
//! token can turn a 401 answer into a success.
//!
//! A route that asks for `Basic` or `Negotiate`, or a bearer challenge with
//! `error="insufficient_scope"`, answers 401 whatever token comes next. Retrying such a request
//! would throw away a good token and make every other request wait for a new one, once per
//! such request: the layer returns these answers as they came.

use std::borrow::Cow;

use http::{HeaderMap, header::WWW_AUTHENTICATE};

/// One challenge: an auth scheme and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) token68: Option<&'a str>,
    pub(crate) params: Vec<(&'a str, Cow<'a, str>)>,
}

impl Challenge<'_> {
    /// The value of parameter `name`; parameter names are case-insensitive.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }
}

/// Whether a new token may turn this 401 answer into a success; `dpop` says whether the
/// tokens are DPoP-bound, which makes `DPoP` challenges theirs as well as `Bearer` ones.
///
/// `false` only when the answer says so: every challenge names another scheme, or every one
/// of the token's schemes reports `insufficient_scope` (a new token has the same scopes) or
/// `use_dpop_nonce` (the token was fine; the proof lacked the nonce). No header, or one that
/// does not parse, says nothing, so the answer is `true`.
pub(crate) fn new_token_may_help(headers: &HeaderMap, dpop: bool) -> bool {
    let mut challenges = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE) {
        match value.to_str().ok().and_then(parse) {
            Some(parsed) => challenges.extend(parsed),
            None => return true,
        }
    }
    challenges.is_empty()
        || challenges.iter().any(|challenge| {
            (challenge.scheme.eq_ignore_ascii_case("bearer")
                || (dpop && challenge.scheme.eq_ignore_ascii_case("dpop")))
                && !matches!(
                    challenge.param("error"),
                    Some("insufficient_scope" | "use_dpop_nonce")
                )
        })
}

/// Whether the answer demands a DPoP nonce (RFC 9449 section 9): a `DPoP` challenge with
/// `error="use_dpop_nonce"`. The nonce itself comes in the `DPoP-Nonce` header.
pub(crate) fn demands_dpop_nonce(headers: &HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok().and_then(parse))
        .flatten()
        .any(|challenge| {
            challenge.scheme.eq_ignore_ascii_case("dpop")
                && challenge.param("error") == Some("use_dpop_nonce")
        })
}

/// Parses one header value into its challenges. `None` when it does not follow the grammar.
pub(crate) fn parse(value: &str) -> Option<Vec<Challenge<'_>>> {
    let mut cursor = Cursor { text: value, at: 0 };
    let mut challenges = Vec::new();
    loop {
        cursor.skip_separators();
        if cursor.at_end() {
            return Some(challenges);
        }
        let scheme = cursor.token()?;
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        // Parameters need at least one space after the scheme; a comma or the end means none.
        let separated = cursor.skip_whitespace();
        let mut comma_taken = false;
        if separated && !cursor.at_end() && cursor.peek() != Some(b',') {
            if let Some(param) = cursor.param() {
                challenge.params.push(param);
                comma_taken = cursor.more_params(&mut challenge.params);
            } else {
                challenge.token68 = Some(cursor.token68()?);
            }
        }
        challenges.push(challenge);
        cursor.skip_whitespace();
        if !comma_taken && !cursor.at_end() && cursor.peek() != Some(b',') {
            return None;
        }
    }
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Skips spaces and tabs; returns whether there were any.
    fn skip_whitespace(&mut self) -> bool {
        let start = self.at;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
        self.at > start
    }

    /// Skips the empty list elements and commas between challenges.
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.at += 1;
        }
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a str {
        let start = self.at;
        while self.peek().is_some_and(&accept) {
            self.at += 1;
        }
        // Only ASCII bytes are accepted, so both ends are char boundaries.
        &self.text[start..self.at]
    }

    fn token(&mut self) -> Option<&'a str> {
        let token = self.take_while(is_tchar);
        (!token.is_empty()).then_some(token)
    }

    /// `token BWS "=" BWS ( token / quoted-string )`, or nothing consumed.
    fn param(&mut self) -> Option<(&'a str, Cow<'a, str>)> {
        let start = self.at;
        let parsed = (|| {
            let name = self.token()?;
            self.skip_whitespace();
            if self.peek() != Some(b'=') {
                return None;
            }
            self.at += 1;
            self.skip_whitespace();
            let value = match self.peek() {
                Some(b'"') => self.quoted()?,
                _ => Cow::Borrowed(self.token()?),
            };
            Some((name, value))
        })();
        if parsed.is_none() {
            self.at = start;
        }
        parsed
    }

    /// Parameters after the first, each after a comma. Returns whether a comma was consumed
    /// that no parameter followed: the next challenge starts there.
    fn more_params(&mut self, params: &mut Vec<(&'a str, Cow<'a, str>)>) -> bool {
        loop {
            let before = self.at;
            self.skip_whitespace();
            if self.peek() != Some(b',') {
                self.at = before;
                return false;
            }
            self.skip_separators();
            match self.param() {
                Some(param) => params.push(param),
                None => return true,
            }
        }
    }

    fn quoted(&mut self) -> Option<Cow<'a, str>> {
        self.at += 1;
        let start = self.at;
        let mut owned: Option<String> = None;
        loop {
            let rest = &self.text[self.at..];
            let c = rest.chars().next()?;
            match c {
                '"' => {
                    let value = match owned {
                        Some(owned) => Cow::Owned(owned),
                        None => Cow::Borrowed(&self.text[start..self.at]),
                    };
                    self.at += 1;
                    return Some(value);
                }
                '\\' => {
                    let escaped = rest[1..].chars().next()?;
                    if escaped.is_ascii_control() && escaped != '\t' {
                        return None;
                    }
                    owned
                        .get_or_insert_with(|| self.text[start..self.at].to_owned())
                        .push(escaped);
                    self.at += 1 + escaped.len_utf8();
                }
                _ if c.is_ascii_control() && c != '\t' => return None,
                _ => {
                    if let Some(owned) = &mut owned {
                        owned.push(c);
                    }
                    self.at += c.len_utf8();
                }
            }
        }
    }

    /// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    fn token68(&mut self) -> Option<&'a str> {
        let start = self.at;
        let body = self.take_while(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        if body.is_empty() {
            return None;
        }
        self.take_while(|b| b == b'=');
        Some(&self.text[start..self.at])
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn parses_the_rfc_9110_example() {
        let value =
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#;
        let challenges = parse(value).unwrap();
        assert_eq!(challenges.len(), 2);
        assert_eq!(challenges[0].scheme, "Newauth");
        assert_eq!(challenges[0].param("REALM"), Some("apps"));
        assert_eq!(challenges[0].param("type"), Some("1"));
        assert_eq!(challenges[0].param("title"), Some(r#"Login to "apps""#));
        assert_eq!(challenges[1].scheme, "Basic");
        assert_eq!(challenges[1].param("realm"), Some("simple"));
    }

    #[test]
    fn parses_bearer_errors_token68_and_bare_schemes() {
        let value = r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#;
        let bearer = &parse(value).unwrap()[0];
        assert_eq!(bearer.param("error"), Some("invalid_token"));
        assert_eq!(
            bearer.param("error_description"),
            Some("The access token expired")
        );

        let challenges = parse("Negotiate, NTLM, Basic dXNlcjpwYXNz==, Bearer").unwrap();
        let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme).collect();
        assert_eq!(schemes, ["Negotiate", "NTLM", "Basic", "Bearer"]);
        assert_eq!(challenges[2].token68, Some("dXNlcjpwYXNz=="));
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            r#"Bearer error="unterminated"#,
            "Bearer realm=\"a\nb\"",
            "Bearer =x",
            "Bearer realm=a b c",
            "(not a scheme)",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_challenges_a_new_bearer_token_cannot_meet_stop_the_retry() {
        let retry = [
            &[][..],
            &[r#"Bearer error="invalid_token""#],
            &["Bearer"],
            &[r#"Basic realm="x", Bearer realm="y""#],
            &["Basic realm=\"x\"", "bearer"],
            &[r#"Bearer error="unterminated"#],
        ];
        for values in retry {
            assert!(new_token_may_help(&headers(values), false), "{values:?}");
        }
        let give_up = [
            &[r#"Basic realm="x""#][..],
            &["Negotiate", "NTLM"],
            &[r#"DPoP error="invalid_token", algs="ES256""#],
            &[r#"Bearer error="insufficient_scope", scope="admin""#],
        ];
        for values in give_up {
            assert!(!new_token_may_help(&headers(values), false), "{values:?}");
        }
    }

    #[test]
    fn dpop_challenges_are_the_bound_tokens_own() {
        let invalid = [r#"DPoP error="invalid_token", algs="ES256""#];
        assert!(new_token_may_help(&headers(&invalid), true));
        assert!(!new_token_may_help(&headers(&invalid), false));
        // A missing nonce is met by the nonce, not by a new token.
        let nonce = [r#"DPoP error="use_dpop_nonce""#];
        assert!(!new_token_may_help(&headers(&nonce), true));
        assert!(demands_dpop_nonce(&headers(&nonce)));
        assert!(!demands_dpop_nonce(&headers(&[
            r#"Bearer error="use_dpop_nonce""#
        ])));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::__fuzz::write_challenges;

        const TOKEN: &str = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}";

        fn challenge() -> impl Strategy<Value = (String, Vec<(String, String)>)> {
            // Quoted values: any text without control characters but tab.
            let value = "[^\\p{Cc}]{0,16}|\t";
            (TOKEN, proptest::collection::vec((TOKEN, value), 0..4))
        }

        proptest! {
            #[test]
            fn written_challenges_parse_back_to_themselves(
                challenges in proptest::collection::vec(challenge(), 0..4),
            ) {
                let challenges: Vec<Challenge<'_>> = challenges
                    .iter()
                    .map(|(scheme, params)| Challenge {
                        scheme,
                        token68: None,
                        params: params
                            .iter()
                            .map(|(name, value)| (name.as_str(), Cow::Borrowed(value.as_str())))
                            .collect(),
                    })
                    .collect();
                let written = write_challenges(&challenges);
                prop_assert_eq!(parse(&written), Some(challenges), "{}", written);
            }

            #[test]
            fn any_text_parses_or_is_refused_without_panicking(text in any::<String>()) {
                let _ = parse(&text);
            }
        }
    }
}
