//! What the URL's `sslmode` asks for: libpq's modes, of which tokio-postgres parses only
//! disable, prefer and require, so the mode is read (and taken out of the URL) here, in
//! either form of connection string.

use std::ops::Range;

/// libpq's `sslmode`, less `allow` (a plain connection first, TLS if refused), which
/// tokio-postgres cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

const MODES: &str = "disable, prefer, require, verify-ca or verify-full";

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => return Err(format!("sslmode=allow is not supported (use {MODES})")),
            other => return Err(format!("sslmode={other} is unknown (use {MODES})")),
        })
    }

    /// What tokio-postgres is told: it only decides whether TLS is tried or demanded.
    pub(super) fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        }
    }

    /// As written in a URL.
    pub(super) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The connection string without its `sslmode` parameter(s), and the mode (the last one
/// given, as libpq reads it; `prefer` when none is). In a URL the value is taken as written:
/// a percent-encoded one is refused as unknown, never ignored.
pub(super) fn take_sslmode(url: &str) -> Result<(String, SslMode), String> {
    let mut mode = SslMode::Prefer;
    let mut take = |value: &str| -> Result<(), String> {
        mode = SslMode::parse(value).map_err(|e| format!("storage.postgres.url: {e}"))?;
        Ok(())
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), mode)) };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", value)) => take(value)?,
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((rest, mode));
    }
    let mut rest = String::with_capacity(url.len());
    let mut kept = 0;
    for (span, key, value) in (KeyValues { s: url, at: 0 }) {
        if key == "sslmode" {
            take(&value)?;
            rest.push_str(&url[kept..span.start]);
            kept = span.end;
        }
    }
    rest.push_str(&url[kept..]);
    Ok((rest, mode))
}

/// The parameters of libpq's `key = value ...` form, as tokio-postgres reads them: byte
/// span, key and value (quoted or not, `\` escaping). Something malformed ends the list:
/// tokio-postgres then refuses the whole string.
struct KeyValues<'a> {
    s: &'a str,
    at: usize,
}

impl KeyValues<'_> {
    fn skip_ws(&mut self) {
        self.at += self.s[self.at..].len() - self.s[self.at..].trim_start().len();
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.s[self.at..].chars().next()?;
        self.at += c.len_utf8();
        Some(c)
    }

    /// A value: quoted up to the closing quote, else up to whitespace; `\` escapes.
    fn value(&mut self) -> Option<String> {
        let quoted = self.s[self.at..].starts_with('\'');
        if quoted {
            self.at += 1;
        }
        let mut value = String::new();
        loop {
            let rest = &self.s[self.at..];
            match rest.chars().next() {
                Some('\'') if quoted => {
                    self.at += 1;
                    return Some(value);
                }
                Some(c) if !quoted && c.is_whitespace() => return Some(value),
                None if quoted => return None,
                None => return Some(value),
                Some('\\') => {
                    self.at += 1;
                    value.extend(self.next_char());
                }
                Some(c) => {
                    self.at += c.len_utf8();
                    value.push(c);
                }
            }
        }
    }
}

impl Iterator for KeyValues<'_> {
    type Item = (Range<usize>, String, String);

    fn next(&mut self) -> Option<Self::Item> {
        self.skip_ws();
        let start = self.at;
        let key_len = self.s[start..].find(|c: char| c.is_whitespace() || c == '=').unwrap_or(self.s.len() - start);
        if key_len == 0 {
            return None;
        }
        self.at += key_len;
        self.skip_ws();
        if self.next_char() != Some('=') {
            return None;
        }
        self.skip_ws();
        let value = self.value()?;
        Some((start..self.at, self.s[start..start + key_len].to_string(), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sslmode_is_taken_out_of_a_url_wherever_it_stands() {
        let base = "postgres://u:p@db:5432/shop";
        let cases = [
            (base.to_string(), base.to_string(), SslMode::Prefer),
            (format!("{base}?sslmode=verify-full"), base.to_string(), SslMode::VerifyFull),
            (
                format!("{base}?sslmode=require&application_name=a"),
                format!("{base}?application_name=a"),
                SslMode::Require,
            ),
            (
                format!("{base}?application_name=a&sslmode=verify-ca"),
                format!("{base}?application_name=a"),
                SslMode::VerifyCa,
            ),
            (
                format!("{base}?connect_timeout=5&sslmode=disable&application_name=a"),
                format!("{base}?connect_timeout=5&application_name=a"),
                SslMode::Disable,
            ),
            (format!("{base}?sslmode=require&sslmode=verify-full"), base.to_string(), SslMode::VerifyFull),
        ];
        for (url, rest, mode) in cases {
            assert_eq!(take_sslmode(&url).unwrap(), (rest, mode), "{url}");
        }
        let postgresql = take_sslmode("postgresql://db/shop?sslmode=verify-full").unwrap();
        assert_eq!(postgresql, ("postgresql://db/shop".to_string(), SslMode::VerifyFull));
    }

    #[test]
    fn the_sslmode_is_taken_out_of_a_key_value_string() {
        let (rest, mode) = take_sslmode("host=db sslmode=verify-full user=u").unwrap();
        assert_eq!(
            (rest.split_whitespace().collect::<Vec<_>>(), mode),
            (vec!["host=db", "user=u"], SslMode::VerifyFull)
        );
        let (rest, mode) = take_sslmode("host=db password='a b\\' sslmode=disable' sslmode = 'verify-ca'").unwrap();
        assert_eq!((rest.trim(), mode), ("host=db password='a b\\' sslmode=disable'", SslMode::VerifyCa));
        assert_eq!(take_sslmode("host=/tmp port=5432").unwrap(), ("host=/tmp port=5432".to_string(), SslMode::Prefer));
    }
}
