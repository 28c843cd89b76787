//! Pure lead scoring for LeadRank.
