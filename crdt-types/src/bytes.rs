//! An immutable byte string: register values, set members, map fields.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// An immutable, heap-allocated byte string (one pointer and a length).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(#[serde(with = "serde_bytes")] Box<[u8]>);

impl Bytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }

    /// The bytes as text, if they are UTF-8.
    ///
    /// ```
    /// use crdt_types::Bytes;
    /// assert_eq!(Bytes::from("héllo").to_str(), Ok("héllo"));
    /// assert!(Bytes::from(vec![0xff]).to_str().is_err());
    /// ```
    pub fn to_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }
}

/// Compares with text or raw bytes as they are:
///
/// ```
/// use crdt_types::Bytes;
/// let b = Bytes::from("hello");
/// assert!(b == "hello" && b == *"hello" && b == b"hello"[..] && b == b"hello");
/// assert!(b != "world");
/// // From arrays, and from the items of a slice of strings.
/// assert_eq!(Bytes::from([1u8, 2]), Bytes::from(&[1u8, 2]));
/// let members: Vec<Bytes> = ["a", "b"].iter().map(Bytes::from).collect();
/// assert_eq!(members, ["a", "b"]);
/// ```
impl PartialEq<str> for Bytes {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other.as_bytes()
    }
}

impl PartialEq<&str> for Bytes {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == *other.as_bytes()
    }
}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0 == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Bytes {
    fn eq(&self, other: &&[u8; N]) -> bool {
        *self.0 == other[..]
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Self {
        Bytes(b.into())
    }
}

impl<const N: usize> From<&[u8; N]> for Bytes {
    fn from(b: &[u8; N]) -> Self {
        Bytes(b.as_slice().into())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(b: Vec<u8>) -> Self {
        Bytes(b.into_boxed_slice())
    }
}

impl From<&Vec<u8>> for Bytes {
    fn from(b: &Vec<u8>) -> Self {
        Bytes(b.as_slice().into())
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Self {
        Bytes(s.as_bytes().into())
    }
}

impl From<String> for Bytes {
    fn from(s: String) -> Self {
        Bytes(s.into_bytes().into_boxed_slice())
    }
}

impl From<&String> for Bytes {
    fn from(s: &String) -> Self {
        Bytes(s.as_bytes().into())
    }
}

impl<const N: usize> From<[u8; N]> for Bytes {
    fn from(b: [u8; N]) -> Self {
        Bytes(Box::new(b))
    }
}

impl From<&&str> for Bytes {
    fn from(s: &&str) -> Self {
        Bytes::from(*s)
    }
}

impl From<&Bytes> for Bytes {
    fn from(b: &Bytes) -> Self {
        b.clone()
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(b: Bytes) -> Self {
        b.0.into_vec()
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => write!(f, "{s:?}"),
            Err(_) => write!(f, "{:02x?}", &self.0),
        }
    }
}
