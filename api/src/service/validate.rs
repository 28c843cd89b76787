//! Checks of user input at the edge: each names the input path it refuses.

use crate::{
    domain::Parse,
    error::{AppError, AppResult},
};

/// A required, trimmed text of at most `max` characters.
///
/// # Errors
/// BAD_USER_INPUT on `field` when empty or too long.
pub fn required_text(field: &str, value: &str, max: usize) -> AppResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    optional_text(field, Some(value), max).map(|v| v.unwrap_or_default())
}

/// An optional text: trimmed, empty means absent, at most `max` characters.
///
/// # Errors
/// BAD_USER_INPUT on `field` when too long.
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> AppResult<Option<String>> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(AppError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(AppError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(value.to_owned()))
}

/// A value of a domain type (an [`crate::domain::Email`], a
/// [`crate::domain::Phone`], …) from a client's text.
///
/// # Errors
/// BAD_USER_INPUT on `field`, saying why.
pub fn parse<T: Parse>(field: &str, raw: &str) -> AppResult<T> {
    T::parse(raw).map_err(|why| AppError::invalid(field, why))
}

/// A new password: at least the minimum length, and not one a guesser
/// tries first (see [`crate::auth::password::weakness`]).
///
/// # Errors
/// BAD_USER_INPUT on `field`.
pub fn new_password(field: &str, value: &str) -> AppResult<()> {
    let min = crate::auth::password::MIN_PASSWORD_CHARS;
    if value.chars().count() < min {
        return Err(AppError::invalid(
            field,
            format!("must be at least {min} characters"),
        ));
    }
    if value.len() > 1024 {
        return Err(AppError::invalid(field, "must be at most 1024 bytes"));
    }
    if let Some(why) = crate::auth::password::weakness(value) {
        return Err(AppError::invalid(field, why));
    }
    Ok(())
}

/// An IANA time zone such as `Asia/Shanghai`.
///
/// # Errors
/// BAD_USER_INPUT on `field`.
pub fn time_zone(field: &str, value: &str) -> AppResult<String> {
    value
        .trim()
        .parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| {
            AppError::invalid(
                field,
                "must be an IANA time zone such as Europe/Berlin or Asia/Shanghai",
            )
        })
}

/// An id from the client, typed as what it names (a
/// [`entity::LeadId`], a [`entity::UserId`], …).
///
/// # Errors
/// BAD_USER_INPUT on `field`.
pub fn id<T: From<uuid::Uuid>>(field: &str, value: &str) -> AppResult<T> {
    uuid::Uuid::parse_str(value.trim())
        .map(T::from)
        .map_err(|_| AppError::invalid(field, "is not a valid id"))
}

/// Ids from the client, each once, in the order given; a bad one is
/// named by its place (`field[2]`).
///
/// # Errors
/// BAD_USER_INPUT on the element.
pub fn ids<T: From<uuid::Uuid> + Copy + Ord>(
    field: &str,
    raw: &[impl AsRef<str>],
) -> AppResult<Vec<T>> {
    let mut seen = std::collections::BTreeSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, id)| id_at(field, i, id.as_ref()))
        .filter(|id| id.as_ref().map_or(true, |id| seen.insert(*id)))
        .collect()
}

fn id_at<T: From<uuid::Uuid>>(field: &str, i: usize, raw: &str) -> AppResult<T> {
    id(&format!("{field}[{i}]"), raw)
}

/// A configuration key (stage, signal type, lead field): 1 to 64 lower-case
/// letters, digits and underscores, starting with a letter. Keys are what
/// models, attributes and imports refer to, so they stay plain ASCII.
///
/// # Errors
/// BAD_USER_INPUT on `field`.
pub fn key(field: &str, value: &str) -> AppResult<String> {
    let value = value.trim();
    let valid = (1..=64).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(AppError::invalid(
            field,
            "must be 1 to 64 lower-case letters, digits or underscores, starting with a letter, such as trial_lesson",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_shorter_than_ten_characters_are_refused() {
        assert!(new_password("p", "123456789").is_err());
        // Ten characters are enough; `1234567890`, the example here until
        // issue 17 item 11, is now refused as a most common password.
        assert!(new_password("p", "1234567z90").is_ok());
        assert!(new_password("p", "1234567890").is_err());
        assert!(new_password("p", "密码密码密码密码密码").is_ok());
    }

    #[test]
    fn time_zones_must_be_known() {
        assert_eq!(time_zone("t", "Asia/Shanghai").unwrap(), "Asia/Shanghai");
        assert!(time_zone("t", "Mars/Olympus").is_err());
    }

    #[test]
    fn keys_are_lower_snake_case_ascii() {
        assert_eq!(key("k", " trial_lesson2 ").unwrap(), "trial_lesson2");
        for bad in [
            "",
            "Trial",
            "2nd",
            "_x",
            "a-b",
            "a b",
            "阶段",
            &"a".repeat(65),
        ] {
            assert!(key("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        assert!(required_text("n", "线索阶段", 4).is_ok());
        assert!(required_text("n", "线索阶段x", 4).is_err());
        assert!(required_text("n", "   ", 4).is_err());
    }
}
