//! Meridian

pub mod tls;
