//! Meridian
