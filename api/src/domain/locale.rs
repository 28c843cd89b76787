use super::Parse;

/// A language LeadRank speaks: the default pipeline, signals and lead
/// fields of a new tenant are written in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locale {
    /// English, `en`.
    En,
    /// Simplified Chinese, `zh-CN`.
    ZhCn,
}

impl Locale {
    /// The tag, as stored and as clients send it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::ZhCn => "zh-CN",
        }
    }
}

impl Parse for Locale {
    fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw.trim() {
            "en" => Ok(Self::En),
            "zh-CN" | "zh-cn" | "zh" => Ok(Self::ZhCn),
            _ => Err("must be \"en\" or \"zh-CN\""),
        }
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chinese_is_accepted_under_its_common_tags() {
        for tag in ["zh-CN", "zh-cn", "zh"] {
            assert_eq!(Locale::parse(tag).unwrap(), Locale::ZhCn);
        }
        assert!(Locale::parse("fr").is_err());
    }
}
