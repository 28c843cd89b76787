use super::Parse;

/// A tenant's slug, the name it signs in with: 3 to 63 lower-case letters,
/// digits and inner hyphens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slug(pub(super) String);

impl Parse for Slug {
    fn parse(raw: &str) -> Result<Self, &'static str> {
        let value = raw.trim().to_lowercase();
        let valid = (3..=63).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if valid {
            Ok(Self(value))
        } else {
            Err("must be 3 to 63 lower-case letters, digits or hyphens, such as acme-sales")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slugs_are_lower_case_words_with_hyphens() {
        assert_eq!(Slug::parse("Acme-Sales").unwrap().0, "acme-sales");
        for bad in ["ab", "-acme", "acme-", "acme sales", "acme_sales", "销售"] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }
}
