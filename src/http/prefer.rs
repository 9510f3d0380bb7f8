//! The `Prefer` request header (RFC 7240) of saga-backed requests: how long the client wants
//! the answer to wait for the saga to settle. `respond-async` answers 202 at once (a client
//! that polls or listens for events anyway); `wait=N` waits at most N seconds, never longer
//! than `checkout.sync_wait_ms`. Anything else is ignored, as the RFC asks of preferences a
//! server does not know; a malformed header is no reason to refuse a checkout.

use std::time::Duration;

use warp::http::HeaderMap;

/// The header as the OpenAPI document describes it on every saga-backed route.
pub const DESCRIPTION: &str = "`respond-async` answers 202 at once; `wait=N` waits at most N seconds for the saga \
     (never longer than the server's `checkout.sync_wait_ms`). Echoed in `Preference-Applied` when honoured";

/// The wait a request asked for, and how to say in `Preference-Applied` that it was honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub time: Duration,
    pub applied: Option<String>,
}

/// The wait for this request: the server's `configured` one unless `Prefer` asks for less.
pub fn wait(headers: &HeaderMap, configured: Duration) -> Wait {
    let mut wait = Wait { time: configured, applied: None };
    let preferences = headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    for preference in preferences {
        // `name[=value][; parameter...]`: parameters carry nothing for these two.
        let head = preference.split(';').next().unwrap_or_default();
        let (name, value) = match head.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (head.trim(), None),
        };
        if name.eq_ignore_ascii_case("respond-async") {
            return Wait { time: Duration::ZERO, applied: Some("respond-async".into()) };
        }
        if name.eq_ignore_ascii_case("wait") {
            let Some(secs) = value.and_then(|v| v.parse::<u64>().ok()) else { continue };
            let asked = Duration::from_secs(secs);
            if asked < wait.time {
                wait = Wait { time: asked, applied: Some(format!("wait={secs}")) };
            }
        }
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(values: &[&str]) -> Wait {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("prefer", v.parse().unwrap());
        }
        wait(&headers, Duration::from_secs(2))
    }

    #[test]
    fn without_a_preference_the_configured_wait_holds() {
        assert_eq!(asked(&[]), Wait { time: Duration::from_secs(2), applied: None });
        assert_eq!(asked(&["handling=lenient", "return=minimal"]).applied, None, "others are ignored");
    }

    #[test]
    fn respond_async_answers_at_once_whatever_else_is_asked() {
        for v in ["respond-async", "Respond-Async", "wait=1, respond-async", " respond-async ; x=1"] {
            assert_eq!(asked(&[v]), Wait { time: Duration::ZERO, applied: Some("respond-async".into()) }, "{v}");
        }
        assert_eq!(asked(&["wait=1", "respond-async"]).time, Duration::ZERO, "across header lines too");
    }

    #[test]
    fn a_wait_shortens_but_never_lengthens_the_configured_one() {
        assert_eq!(asked(&["wait=1"]), Wait { time: Duration::from_secs(1), applied: Some("wait=1".into()) });
        assert_eq!(asked(&["wait=\"0\""]).time, Duration::ZERO);
        assert_eq!(asked(&["wait=60"]), Wait { time: Duration::from_secs(2), applied: None });
    }

    #[test]
    fn a_malformed_wait_is_ignored() {
        for v in ["wait", "wait=", "wait=-1", "wait=1.5", "wait=99999999999999999999999", "wait=abc"] {
            assert_eq!(asked(&[v]).applied, None, "{v}");
        }
    }
}
