//! Peers that behave as the exercise's reference implementations do.
