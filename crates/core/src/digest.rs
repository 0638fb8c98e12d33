//! Content digests (pure): SHA-256 over named, length-prefixed fields, shown as short hex. The
//! desired-state revision, a service's spec hash and the EC2 client token are all made here.

use sha2::{Digest, Sha256};

/// A digest of a sequence of fields. Each field is its name, a NUL, its length and its bytes,
/// so no two different sequences hash the same bytes by running into each other.
#[derive(Default)]
pub struct FieldDigest(Sha256);

impl FieldDigest {
    pub fn field(&mut self, name: &str, value: &[u8]) {
        self.0.update(name.as_bytes());
        self.0.update([0]);
        self.0.update(value.len().to_le_bytes());
        self.0.update(value);
    }

    /// The first `bytes` bytes of the digest, in lowercase hex.
    pub fn short_hex(self, bytes: usize) -> String {
        hex(&self.0.finalize()[..bytes])
    }
}

/// The first `bytes` bytes of the SHA-256 of `data`, in lowercase hex.
pub fn short_sha256(data: &[u8], bytes: usize) -> String {
    hex(&Sha256::digest(data)[..bytes])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed_so_moving_a_boundary_changes_the_digest() {
        let digest = |fields: &[(&str, &str)]| {
            let mut digest = FieldDigest::default();
            for (name, value) in fields {
                digest.field(name, value.as_bytes());
            }
            digest.short_hex(8)
        };
        assert_eq!(digest(&[("a", "bc")]), digest(&[("a", "bc")]));
        assert_ne!(digest(&[("a", "bc")]), digest(&[("ab", "c")]));
        assert_ne!(
            digest(&[("a", "b"), ("c", "")]),
            digest(&[("a", ""), ("bc", "")])
        );
        assert_eq!(digest(&[("a", "bc")]).len(), 16);
    }

    #[test]
    fn short_sha256_is_the_prefix_of_the_full_digest() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(short_sha256(b"abc", 4), "ba7816bf");
        assert_eq!(short_sha256(b"abc", 32).len(), 64);
    }
}
