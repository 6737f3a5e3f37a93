//! The SRTP protection profiles (crypto suites) and their parameters.

/// An SRTP protection profile: cipher, authentication and the lengths of
/// keys, salts and tags that go with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag (RFC 3711).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode with a 32-bit HMAC-SHA1 tag on RTP; SRTCP keeps
    /// the 80-bit tag (RFC 3711 section 5.2, RFC 5764 section 4.1.2).
    AesCm128HmacSha1_32,
    /// AES-256 counter mode with an 80-bit HMAC-SHA1 tag (RFC 6188).
    AesCm256HmacSha1_80,
    /// AES-256 counter mode with a 32-bit HMAC-SHA1 tag on RTP, 80 bits on
    /// SRTCP (RFC 6188).
    AesCm256HmacSha1_32,
    /// AES-128 in Galois/counter mode, 128-bit tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256 in Galois/counter mode, 128-bit tag (RFC 7714).
    AeadAes256Gcm,
}

impl Profile {
    /// Every profile, in the order above.
    pub const ALL: [Profile; 6] = [
        Profile::AesCm128HmacSha1_80,
        Profile::AesCm128HmacSha1_32,
        Profile::AesCm256HmacSha1_80,
        Profile::AesCm256HmacSha1_32,
        Profile::AeadAes128Gcm,
        Profile::AeadAes256Gcm,
    ];

    /// The SDES crypto-suite name (RFC 4568, RFC 6188, RFC 7714), e.g.
    /// `"AES_CM_128_HMAC_SHA1_80"`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Profile::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Profile::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Profile::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Profile::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Profile::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The profile named by its SDES crypto-suite name or by its DTLS-SRTP
    /// protection-profile name (`"SRTP_AES128_CM_HMAC_SHA1_80"`,
    /// `"SRTP_AEAD_AES_128_GCM"` ...; RFC 5764, RFC 7714).
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name || p.dtls_name() == Some(name))
    }

    /// The DTLS-SRTP protection-profile name, where one is registered
    /// (there is none for AES-256-CM).
    pub fn dtls_name(self) -> Option<&'static str> {
        match self {
            Profile::AesCm128HmacSha1_80 => Some("SRTP_AES128_CM_HMAC_SHA1_80"),
            Profile::AesCm128HmacSha1_32 => Some("SRTP_AES128_CM_HMAC_SHA1_32"),
            Profile::AeadAes128Gcm => Some("SRTP_AEAD_AES_128_GCM"),
            Profile::AeadAes256Gcm => Some("SRTP_AEAD_AES_256_GCM"),
            Profile::AesCm256HmacSha1_80 | Profile::AesCm256HmacSha1_32 => None,
        }
    }

    /// Whether the profile is an AEAD (GCM) transform rather than AES-CM
    /// with a separate HMAC.
    pub fn is_aead(self) -> bool {
        matches!(self, Profile::AeadAes128Gcm | Profile::AeadAes256Gcm)
    }

    /// Length of the master key and of the session cipher key, in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Profile::AesCm128HmacSha1_80 | Profile::AesCm128HmacSha1_32 | Profile::AeadAes128Gcm => 16,
            Profile::AesCm256HmacSha1_80 | Profile::AesCm256HmacSha1_32 | Profile::AeadAes256Gcm => 32,
        }
    }

    /// Length of the master salt and of the session salt, in bytes: 14 for
    /// AES-CM, 12 for GCM.
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    /// Length of the authentication tag on SRTP packets, in bytes.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Profile::AesCm128HmacSha1_80 | Profile::AesCm256HmacSha1_80 => 10,
            Profile::AesCm128HmacSha1_32 | Profile::AesCm256HmacSha1_32 => 4,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => 16,
        }
    }

    /// Length of the authentication tag on SRTCP packets, in bytes (the
    /// `_32` profiles keep the 80-bit tag here).
    pub fn rtcp_tag_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            10
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Profile::ALL {
            assert_eq!(Profile::from_name(p.name()), Some(p));
            if let Some(d) = p.dtls_name() {
                assert_eq!(Profile::from_name(d), Some(p));
            }
        }
        assert_eq!(Profile::from_name("AES_CM_128_HMAC_SHA1_81"), None);
    }
}
