//! Password rule: at least 10 characters, at least one letter and one digit, at most 128.

/// The rules, as shown to a client in `details.requirements`.
pub const REQUIREMENTS: [&str; 4] =
    ["at least 10 characters", "at least one letter", "at least one digit", "at most 128 characters"];

/// A password that satisfies the rule. Never stored; only its Argon2 hash is.
pub struct Password(String);

impl Password {
    /// On failure returns the requirements that are not met.
    pub fn parse(raw: &str) -> Result<Password, Vec<&'static str>> {
        let len = raw.chars().count();
        let mut unmet = Vec::new();
        if len < 10 {
            unmet.push(REQUIREMENTS[0]);
        }
        if !raw.chars().any(char::is_alphabetic) {
            unmet.push(REQUIREMENTS[1]);
        }
        if !raw.chars().any(|c| c.is_ascii_digit()) {
            unmet.push(REQUIREMENTS[2]);
        }
        if len > 128 {
            unmet.push(REQUIREMENTS[3]);
        }
        if unmet.is_empty() {
            Ok(Password(raw.to_string()))
        } else {
            Err(unmet)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        assert!(Password::parse("correcthorse9").is_ok());
        assert_eq!(Password::parse("short1").err().unwrap(), vec![REQUIREMENTS[0]]);
        assert_eq!(Password::parse("onlyletterslong").err().unwrap(), vec![REQUIREMENTS[2]]);
        assert_eq!(Password::parse("1234567890").err().unwrap(), vec![REQUIREMENTS[1]]);
        assert!(Password::parse(&format!("a1{}", "x".repeat(200))).is_err());
        assert!(Password::parse("ünïcødé-pässwörd-1").is_ok());
    }
}
