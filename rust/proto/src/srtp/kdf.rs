//! AES counter mode as SRTP uses it, and the key derivation built on it
//! (RFC 3711 sections 4.1.1 and 4.3, RFC 6188 section 3 for AES-256).

use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipher, BlockEncrypt, BlockSizeUser, InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper,
};
use aes::{Aes128, Aes256};
use ctr::flavors::Ctr128BE;
use ctr::CtrCore;

/// Key-derivation labels (RFC 3711 section 4.3.1, table 2).
pub mod label {
    /// SRTP encryption key.
    pub const RTP_CIPHER: u8 = 0x00;
    /// SRTP authentication key.
    pub const RTP_AUTH: u8 = 0x01;
    /// SRTP salting key.
    pub const RTP_SALT: u8 = 0x02;
    /// SRTCP encryption key.
    pub const RTCP_CIPHER: u8 = 0x03;
    /// SRTCP authentication key.
    pub const RTCP_AUTH: u8 = 0x04;
    /// SRTCP salting key.
    pub const RTCP_SALT: u8 = 0x05;
}

/// Largest key derivation rate RFC 3711 allows (section 4.3.1: a power of
/// two from 1 to 2^24, or 0 for "derive once").
pub const MAX_KEY_DERIVATION_RATE: u32 = 1 << 24;

/// Length of the salt the AES-CM PRF and the AES-CM IV take, in bytes.
pub const CM_SALT_LEN: usize = 14;

/// An expanded AES key (128 or 256 bits), used as a counter-mode keystream
/// generator. The key schedule is computed once; each packet only sets a
/// counter block.
// Inline on purpose: a session holds two of these and uses one per packet;
// boxing would add a pointer chase to every packet.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum AesCtr {
    Aes128(Aes128),
    Aes256(Aes256),
}

impl AesCtr {
    /// `None` unless `key` is 16 or 32 bytes.
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => Aes128::new_from_slice(key).ok().map(AesCtr::Aes128),
            32 => Aes256::new_from_slice(key).ok().map(AesCtr::Aes256),
            _ => None,
        }
    }

    /// XORs `data` with the keystream that starts at counter block `iv`.
    pub(crate) fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]) {
        // The counter runs over all 128 bits; SRTP IVs end in 16 zero bits
        // and a packet has far fewer than 2^16 blocks, so this is the same
        // as RFC 3711's 16-bit block counter.
        match self {
            AesCtr::Aes128(aes) => keystream_from(aes, iv).apply_keystream(data),
            AesCtr::Aes256(aes) => keystream_from(aes, iv).apply_keystream(data),
        }
    }
}

/// A counter-mode keystream over a borrowed key schedule (no copy of the
/// expanded key per packet).
fn keystream_from<'a, C>(aes: &'a C, iv: &[u8; 16]) -> StreamCipherCoreWrapper<CtrCore<&'a C, Ctr128BE>>
where
    C: BlockEncrypt + BlockCipher + BlockSizeUser<BlockSize = U16>,
{
    StreamCipherCoreWrapper::from_core(CtrCore::inner_iv_init(aes, iv.into()))
}

/// The AES-CM IV of RFC 3711 section 4.1.1:
/// `(salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16)`, with `salt` at
/// most 14 bytes (shorter salts are zero-extended on the right).
pub(crate) fn cm_iv(salt: &[u8], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..salt.len()].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, i) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= i;
    }
    iv
}

/// Writes `out.len()` bytes of the SRTP AES-CM keystream for a packet: the
/// keystream of RFC 3711 Appendix B.2, from a session key (16 or 32 bytes)
/// and a session salt (at most 14 bytes). `None` on a bad key length.
pub fn aes_cm_keystream(session_key: &[u8], session_salt: &[u8], ssrc: u32, index: u64, out: &mut [u8]) -> Option<()> {
    if session_salt.len() > CM_SALT_LEN {
        return None;
    }
    out.fill(0);
    AesCtr::new(session_key)?.apply_keystream(&cm_iv(session_salt, ssrc, index), out);
    Some(())
}

/// The key-derivation PRF keyed with one master key and salt.
pub(crate) struct Kdf {
    prf: AesCtr,
    salt: [u8; CM_SALT_LEN],
}

impl Kdf {
    /// `None` unless the key is 16 or 32 bytes and the salt at most 14
    /// (a 12-byte GCM master salt is zero-extended to 14 bytes, as libsrtp
    /// does).
    pub(crate) fn new(master_key: &[u8], master_salt: &[u8]) -> Option<Self> {
        if master_salt.len() > CM_SALT_LEN {
            return None;
        }
        let mut salt = [0u8; CM_SALT_LEN];
        salt[..master_salt.len()].copy_from_slice(master_salt);
        Some(Kdf { prf: AesCtr::new(master_key)?, salt })
    }

    /// Fills `out` with the session key for `label` at `r = index DIV
    /// key_derivation_rate`: the keystream for the IV
    /// `((label || r) XOR master_salt) * 2^16`.
    pub(crate) fn derive(&self, label: u8, r: u64, out: &mut [u8]) {
        let mut x = self.salt;
        x[7] ^= label;
        for (b, v) in x[8..].iter_mut().zip(&r.to_be_bytes()[2..]) {
            *b ^= v;
        }
        let mut iv = [0u8; 16];
        iv[..CM_SALT_LEN].copy_from_slice(&x);
        out.fill(0);
        self.prf.apply_keystream(&iv, out);
    }
}

impl Drop for Kdf {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.salt);
    }
}

/// `index DIV key_derivation_rate`, the `r` of RFC 3711 section 4.3.1
/// (0 when the rate is 0: keys are derived once).
pub(crate) fn rate_quotient(index: u64, key_derivation_rate: u32) -> u64 {
    index.checked_div(u64::from(key_derivation_rate)).unwrap_or(0)
}

/// Derives `out.len()` bytes of session key material for `label` from a
/// master key (16 or 32 bytes) and master salt (at most 14 bytes) at packet
/// `index` with the given key derivation rate (RFC 3711 section 4.3, the
/// values of Appendix B.3). `None` on a bad key or salt length.
pub fn derive_session_key(
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    index: u64,
    key_derivation_rate: u32,
    out: &mut [u8],
) -> Option<()> {
    Kdf::new(master_key, master_salt)?.derive(label, rate_quotient(index, key_derivation_rate), out);
    Some(())
}
