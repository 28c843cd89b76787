//! Password hashing with argon2id and a per-user salt.

use std::sync::LazyLock;

use anyhow::anyhow;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Passwords of at least [`MIN_PASSWORD_CHARS`] characters that appear at
/// the top of the published breach-frequency lists (SecLists' most common
/// credentials, NCSC's 100k list): the first ones a guesser tries, so the
/// login throttle alone would not protect them. Compared ignoring case.
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "0123456789",
    "0987654321",
    "12345678910",
    "123456789a",
    "1234567890a",
    "a123456789",
    "qwertyuiop",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "qwertyuiop123",
    "asdfghjkl1",
    "zxcvbnm123",
    "password12",
    "password123",
    "password1234",
    "password!!",
    "passw0rd123",
    "p@ssw0rd123",
    "iloveyou12",
    "iloveyou123",
    "abcdefghij",
    "abcd123456",
    "abc1234567",
    "administrator",
    "admin12345",
    "admin123456",
    "letmein123",
    "welcome123",
    "welcome1234",
    "changeme123",
    "football123",
    "baseball123",
    "monkey1234",
    "sunshine123",
    "princess123",
    "superman123",
    "starwars123",
    "trustno1234",
    "michael123",
    "1111111111a",
    "123123123123",
    "1234512345",
    "1122334455",
    "9876543210",
    "qazwsxedcrfv",
];

/// Why `password` is too easy to guess, or `None` when it is acceptable
/// beyond its length: blank at either end (a typing slip that the user
/// will not reproduce, or padding around a short password), one character
/// repeated, or one of the most common passwords.
#[must_use]
pub fn weakness(password: &str) -> Option<&'static str> {
    if password.trim() != password {
        return Some("must not begin or end with a space");
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Some("must not be one character repeated");
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.iter().any(|common| *common == lower) {
        return Some("is one of the most common passwords; choose another");
    }
    None
}

/// Hashes `password` into a PHC string (algorithm, parameters, salt, hash).
///
/// # Errors
/// Only if the system's random source fails.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| anyhow!("failed to hash a password: {err}"))
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so a failed login
/// costs the same time either way and does not reveal which emails exist.
pub fn verify_against_nothing(password: &str) {
    static DUMMY: LazyLock<Option<String>> =
        LazyLock::new(|| hash_password("no user has this password").ok());
    if let Some(dummy) = DUMMY.as_deref() {
        let _ = verify_password(password, dummy);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
    }

    #[test]
    fn the_same_password_hashes_differently_for_two_users() {
        assert_ne!(
            hash_password("same password").unwrap(),
            hash_password("same password").unwrap()
        );
    }

    #[test]
    fn padded_repeated_and_common_passwords_are_weak_and_others_are_not() {
        for weak in [
            " correct horse",
            "correct horse ",
            "aaaaaaaaaaaa",
            "          ",
            "1234567890",
            "Password123",
            "QWERTYUIOP",
        ] {
            assert!(weakness(weak).is_some(), "{weak:?}");
        }
        for fine in ["correct horse battery", "aaaaaaaaab", "Zq8#mLp2vX"] {
            assert_eq!(weakness(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn a_malformed_hash_never_matches() {
        assert!(!verify_password("anything", "not a hash"));
    }
}
