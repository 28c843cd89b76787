use super::Parse;

/// A phone number reduced to `+` and digits, so `+86 138-0000-0000` and
/// `+8613800000000` are the same lead.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Phone(pub(super) String);

impl Parse for Phone {
    fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        if !(6..=20).contains(&digits.len()) || trimmed.chars().any(char::is_alphabetic) {
            return Err("must be a phone number of 6 to 20 digits");
        }
        Ok(Self(if trimmed.starts_with('+') {
            format!("+{digits}")
        } else {
            digits
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn phones_keep_the_plus_and_the_digits() {
        assert_eq!(
            Phone::parse("+86 138-0000-0000").unwrap().0,
            "+8613800000000"
        );
        assert_eq!(Phone::parse("(030) 123 4567").unwrap().0, "0301234567");
    }

    #[test]
    fn too_short_or_lettered_numbers_are_refused() {
        for bad in ["12345", "call me", "+1 555 CALL NOW", &"1".repeat(21)] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }
}
