use super::Parse;

/// An email address, trimmed and lower-cased. The check is light on
/// purpose: only a sent mail proves an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(pub(super) String);

impl Parse for Email {
    fn parse(raw: &str) -> Result<Self, &'static str> {
        let value = raw.trim().to_lowercase();
        let valid = value.len() <= 254
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !value.chars().any(char::is_whitespace)
            && value.matches('@').count() == 1;
        if valid {
            Ok(Self(value))
        } else {
            Err("must be an email address such as ana@example.com")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ana@Example.COM ").unwrap().0,
            "ana@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "a@b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
