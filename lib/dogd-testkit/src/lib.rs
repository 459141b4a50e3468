//! dogd-testkit (in progress).
