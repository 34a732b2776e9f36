//! The one hash of a key that every part of Meridian agrees on.
//!
//! Placement, anti-entropy ranges and digests all position a key by
//! [`key_hash`]: XXH3-64 with seed 0, a published algorithm that gives the
//! same value on every machine, process and build.

/// The stable 64-bit hash of a key.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_hash_is_the_published_xxh3_value() {
        // Reference value of XXH3-64 (seed 0) for the empty input.
        assert_eq!(super::key_hash(b""), 0x2D06_8005_38D3_94C2);
    }
}
