//! The keyed transforms of one direction (SRTP or SRTCP): AES-CM with
//! HMAC-SHA1, or AES-GCM, with their session keys derived and expanded once.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::kdf::{cm_iv, label, AesCtr, Kdf, CM_SALT_LEN};
use super::Profile;

/// Length of the GCM session salt and IV, in bytes (RFC 7714 section 8.1).
pub(crate) const GCM_SALT_LEN: usize = 12;
/// Length of the GCM tag, in bytes.
pub(crate) const GCM_TAG_LEN: usize = 16;
/// Length of the HMAC-SHA1 session authentication key, in bytes.
const AUTH_KEY_LEN: usize = 20;

/// Which of the two key sets of a master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Rtp,
    Rtcp,
}

/// AES-CM encryption with an HMAC-SHA1 tag.
pub(crate) struct CmTransform {
    cipher: AesCtr,
    salt: [u8; CM_SALT_LEN],
    /// HMAC state already keyed (inner and outer pads absorbed): cloning it
    /// per packet costs a copy, not a re-key.
    mac: Hmac<Sha1>,
}

impl CmTransform {
    /// XORs `data` with the keystream for (SSRC, index).
    pub(crate) fn crypt(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        self.cipher.apply_keystream(&cm_iv(&self.salt, ssrc, index), data);
    }

    /// The keyed HMAC state after absorbing `parts`, in order.
    fn mac_over(&self, parts: &[&[u8]]) -> Hmac<Sha1> {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac
    }

    /// Writes the leftmost `tag.len()` bytes of the HMAC over `parts`.
    pub(crate) fn sign(&self, parts: &[&[u8]], tag: &mut [u8]) {
        let full = self.mac_over(parts).finalize().into_bytes();
        tag.copy_from_slice(&full[..tag.len()]);
    }

    /// Whether `tag` is the truncated HMAC over `parts` (constant time).
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.mac_over(parts).verify_truncated_left(tag).is_ok()
    }
}

/// AES-GCM (RFC 7714).
pub(crate) struct GcmTransform {
    aead: LessSafeKey,
    salt: [u8; GCM_SALT_LEN],
}

impl GcmTransform {
    /// The nonce: the 12-byte IV with `ssrc` at bytes 2..6 and `counter`
    /// (the 48-bit RTP index, or the 31-bit SRTCP index) right-aligned,
    /// XORed with the session salt (RFC 7714 sections 8.1 and 9.1).
    fn nonce(&self, ssrc: u32, counter: u64) -> Nonce {
        let mut iv = self.salt;
        for (b, s) in iv[2..6].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, c) in iv[6..].iter_mut().zip(&counter.to_be_bytes()[2..]) {
            *b ^= c;
        }
        Nonce::assume_unique_for_key(iv)
    }

    /// Encrypts `data` in place and returns the tag.
    pub(crate) fn seal(&self, ssrc: u32, counter: u64, aad: &[u8], data: &mut [u8]) -> [u8; GCM_TAG_LEN] {
        let tag = self
            .aead
            .seal_in_place_separate_tag(self.nonce(ssrc, counter), Aad::from(aad), data)
            .expect("AES-GCM seals any packet shorter than its 2^36-byte limit; SRTP packets are under 64 KiB");
        let mut out = [0u8; GCM_TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks `tag` and decrypts `ciphertext` into `plaintext` (same length);
    /// `false` when the tag does not match (then `plaintext` is garbage).
    pub(crate) fn open(
        &self,
        ssrc: u32,
        counter: u64,
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        plaintext: &mut [u8],
    ) -> bool {
        self.aead.open_separate_gather(self.nonce(ssrc, counter), Aad::from(aad), ciphertext, tag, plaintext).is_ok()
    }
}

/// The session keys of one direction, expanded.
// Inline on purpose: a session holds two of these and uses one per packet;
// boxing would add a pointer chase to every packet.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Transform {
    Cm(CmTransform),
    Gcm(GcmTransform),
}

impl Transform {
    /// Derives and expands the SRTP or SRTCP session keys at `r = index DIV
    /// key_derivation_rate`.
    pub(crate) fn derive(profile: Profile, kdf: &Kdf, direction: Direction, r: u64) -> Transform {
        let (cipher_label, auth_label, salt_label) = match direction {
            Direction::Rtp => (label::RTP_CIPHER, label::RTP_AUTH, label::RTP_SALT),
            Direction::Rtcp => (label::RTCP_CIPHER, label::RTCP_AUTH, label::RTCP_SALT),
        };
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        let key = &mut key[..profile.key_len()];
        kdf.derive(cipher_label, r, key);
        if profile.is_aead() {
            let mut salt = [0u8; GCM_SALT_LEN];
            kdf.derive(salt_label, r, &mut salt);
            let algorithm = if key.len() == 16 { &AES_128_GCM } else { &AES_256_GCM };
            let aead = LessSafeKey::new(
                UnboundKey::new(algorithm, key)
                    .expect("GCM session keys are 16 or 32 bytes, the lengths of the profile"),
            );
            Transform::Gcm(GcmTransform { aead, salt })
        } else {
            let mut salt = [0u8; CM_SALT_LEN];
            kdf.derive(salt_label, r, &mut salt);
            let mut auth_key = zeroize::Zeroizing::new([0u8; AUTH_KEY_LEN]);
            kdf.derive(auth_label, r, &mut auth_key[..]);
            let cipher = AesCtr::new(key).expect("AES-CM session keys are 16 or 32 bytes, the lengths of the profile");
            let mac = <Hmac<Sha1> as Mac>::new_from_slice(&auth_key[..]).expect("HMAC takes keys of any length");
            Transform::Cm(CmTransform { cipher, salt, mac })
        }
    }
}
