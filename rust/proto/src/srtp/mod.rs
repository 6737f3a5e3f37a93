//! SRTP and SRTCP (RFC 3711) with the AES-256 profiles of RFC 6188 and the
//! AES-GCM profiles of RFC 7714: key derivation, packet index and roll-over
//! counter, replay protection, MKI, and the packet framing.
//!
//! A [`Session`] holds the session keys derived from one master key and the
//! per-SSRC state (roll-over counter, replay lists, SRTCP index). Every
//! per-packet call writes into a caller-provided buffer and allocates
//! nothing once the SSRC is known. A packet that fails authentication or the
//! replay check changes no state.

mod kdf;
mod profile;
mod replay;
mod transform;

use std::fmt;

pub use kdf::{aes_cm_keystream, derive_session_key, label, MAX_KEY_DERIVATION_RATE};
pub use profile::Profile;
pub use replay::{estimate_index, ReplayKind, ReplayWindow, MAX_REPLAY_WINDOW, MAX_RTP_INDEX, MIN_REPLAY_WINDOW};

use crate::error::{Layer, ParseError};
use crate::rtp::RtpHeader;
use kdf::{rate_quotient, Kdf};
use transform::{Direction, Transform, GCM_TAG_LEN};

/// Longest MKI, in bytes (RFC 4568 section 6.1 allows 1 to 128).
pub const MAX_MKI_LEN: usize = 128;
/// Largest SRTCP index: the index is 31 bits wide.
pub const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;
/// Default replay window, in packets (as libsrtp).
pub const DEFAULT_REPLAY_WINDOW: u32 = 128;

/// The E flag in the SRTCP trailer word: the packet is encrypted.
const SRTCP_E_FLAG: u32 = 0x8000_0000;
/// RTCP header up to and including the sender SSRC, sent in the clear.
const RTCP_HEADER_LEN: usize = 8;
/// The E flag and SRTCP index word.
const SRTCP_INDEX_LEN: usize = 4;

/// Whether an error concerns an SRTP (RTP) or an SRTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// An SRTP packet.
    Srtp,
    /// An SRTCP packet.
    Srtcp,
}

impl PacketKind {
    /// `"SRTP"` or `"SRTCP"`.
    pub fn name(self) -> &'static str {
        match self {
            PacketKind::Srtp => "SRTP",
            PacketKind::Srtcp => "SRTCP",
        }
    }
}

/// Why a packet failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// The tag does not match: a different key, or the packet was altered.
    TagMismatch,
    /// The packet carries an MKI that names no key of this session.
    UnknownMki,
}

/// Why a packet could not be protected or unprotected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrtpError {
    /// The bytes are not an RTP/RTCP packet, or too short for the SRTP
    /// trailer (tag, MKI, SRTCP index).
    Parse(ParseError),
    /// The packet failed authentication.
    Authentication {
        /// SRTP or SRTCP.
        kind: PacketKind,
        /// What did not match.
        reason: AuthFailure,
    },
    /// The replay list rejected the packet's index.
    Replay {
        /// SRTP or SRTCP.
        kind: PacketKind,
        /// Duplicate or behind the window.
        reason: ReplayKind,
        /// The packet index (48-bit SRTP index, or 31-bit SRTCP index).
        index: u64,
    },
    /// The output buffer is shorter than the result.
    OutputTooSmall {
        /// Bytes the result needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The master key has used up its index space (2^48 SRTP or 2^31 SRTCP
    /// packets for one SSRC): the session must be re-keyed.
    IndexExhausted {
        /// SRTP or SRTCP.
        kind: PacketKind,
    },
}

impl fmt::Display for SrtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SrtpError::Parse(e) => e.fmt(f),
            SrtpError::Authentication { kind, reason: AuthFailure::TagMismatch } => write!(
                f,
                "{} authentication failed: the tag does not match (wrong key, or the packet was altered)",
                kind.name()
            ),
            SrtpError::Authentication { kind, reason: AuthFailure::UnknownMki } => {
                write!(f, "{} authentication failed: the MKI names no key of this session", kind.name())
            }
            SrtpError::Replay { kind, reason, index } => {
                write!(f, "{} replay: index {index} is {}", kind.name(), reason.name())
            }
            SrtpError::OutputTooSmall { needed, available } => {
                write!(f, "output buffer has {available} bytes, {needed} needed")
            }
            SrtpError::IndexExhausted { kind } => {
                write!(f, "{} index space of this master key is exhausted; re-key the session", kind.name())
            }
        }
    }
}

impl std::error::Error for SrtpError {}

impl From<ParseError> for SrtpError {
    fn from(e: ParseError) -> Self {
        SrtpError::Parse(e)
    }
}

/// A session parameter that is out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The parameter's name (`"master_key"`, `"replay_window"` ...).
    pub argument: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.argument, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Session parameters besides the profile and the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Replay window in packets, for SRTP and SRTCP alike
    /// (`MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW`).
    pub replay_window: u32,
    /// Key derivation rate: 0 derives the session keys once, otherwise a
    /// power of two up to 2^24 (RFC 3711 section 4.3.1).
    pub key_derivation_rate: u32,
    /// SRTCP index of the first SRTCP packet sent for each SSRC. RFC 3711
    /// starts at 0; libsrtp sends 1 first.
    pub srtcp_first_index: u32,
    /// The master key identifier sent with (and expected on) every packet;
    /// empty for none.
    pub mki: Vec<u8>,
    /// Whether `protect_rtp` may protect an index it already protected (a
    /// retransmission of the same packet). Off by default, as in libsrtp:
    /// two different packets under one index would share a keystream.
    pub allow_repeat_tx: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            replay_window: DEFAULT_REPLAY_WINDOW,
            key_derivation_rate: 0,
            srtcp_first_index: 0,
            mki: Vec::new(),
            allow_repeat_tx: false,
        }
    }
}

/// The per-SSRC state: indices sent and received.
struct Stream {
    ssrc: u32,
    /// ROC for the first packet, before any index is known (set explicitly).
    roc_hint: u32,
    /// SRTP indices protected (a sender must not reuse one).
    rtp_sent: ReplayWindow,
    /// SRTP indices received.
    rtp_received: ReplayWindow,
    /// SRTCP index of the next SRTCP packet protected.
    rtcp_next: u32,
    /// SRTCP indices received.
    rtcp_received: ReplayWindow,
}

impl Stream {
    /// The index of an SRTP packet with sequence number `seq`, estimated
    /// from the highest index in `window` (or the ROC set for the stream,
    /// before the first packet).
    fn index(&self, window: &ReplayWindow, seq: u16) -> u64 {
        match window.highest() {
            Some(highest) => estimate_index(highest, seq),
            None => u64::from(self.roc_hint) << 16 | u64::from(seq),
        }
    }
}

/// The session keys of one direction for the current `r = index DIV
/// key_derivation_rate`; re-derived when a packet falls in another `r`.
struct KeyEpoch {
    direction: Direction,
    r: u64,
    transform: Transform,
}

impl KeyEpoch {
    fn new(profile: Profile, kdf: &Kdf, direction: Direction) -> Self {
        KeyEpoch { direction, r: 0, transform: Transform::derive(profile, kdf, direction, 0) }
    }

    fn at(&mut self, profile: Profile, kdf: &Kdf, key_derivation_rate: u32, index: u64) -> &Transform {
        let r = rate_quotient(index, key_derivation_rate);
        if r != self.r {
            self.transform = Transform::derive(profile, kdf, self.direction, r);
            self.r = r;
        }
        &self.transform
    }
}

/// An SRTP/SRTCP session for one master key: protects and unprotects
/// packets of any number of SSRCs.
pub struct Session {
    profile: Profile,
    kdf: Kdf,
    config: SessionConfig,
    rtp: KeyEpoch,
    rtcp: KeyEpoch,
    streams: Vec<Stream>,
}

fn be32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn check_output(out: &[u8], needed: usize) -> Result<(), SrtpError> {
    if out.len() < needed {
        return Err(SrtpError::OutputTooSmall { needed, available: out.len() });
    }
    Ok(())
}

/// The SSRC of the sender of a (first) RTCP packet, from its clear header.
fn rtcp_sender_ssrc(packet: &[u8]) -> Result<u32, ParseError> {
    if packet.len() < RTCP_HEADER_LEN {
        return Err(ParseError::truncated(Layer::Rtcp, "header", 0, RTCP_HEADER_LEN, packet.len()));
    }
    let version = packet[0] >> 6;
    if version != 2 {
        return Err(ParseError::new(Layer::Rtcp, "version", 0, format!("expected 2, got {version}")));
    }
    Ok(be32(packet, 4))
}

/// The error for a packet too short to hold its SRTP trailer.
fn short_trailer(field: &'static str, at: usize, trailer: usize, len: usize) -> SrtpError {
    SrtpError::Parse(ParseError::new(
        Layer::Srtp,
        field,
        at,
        format!("a {len}-byte packet cannot hold a {at}-byte header and a {trailer}-byte SRTP trailer"),
    ))
}

impl Session {
    /// A session for `profile` keyed with `master_key` and `master_salt`
    /// (the lengths the profile names).
    pub fn new(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
        config: SessionConfig,
    ) -> Result<Self, ConfigError> {
        let bad = |argument, reason: String| Err(ConfigError { argument, reason });
        if master_key.len() != profile.key_len() {
            return bad(
                "master_key",
                format!("{} needs a {}-byte key, got {}", profile.name(), profile.key_len(), master_key.len()),
            );
        }
        if master_salt.len() != profile.salt_len() {
            return bad(
                "master_salt",
                format!("{} needs a {}-byte salt, got {}", profile.name(), profile.salt_len(), master_salt.len()),
            );
        }
        if !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&config.replay_window) {
            return bad(
                "replay_window",
                format!("must be {MIN_REPLAY_WINDOW} to {MAX_REPLAY_WINDOW} packets, got {}", config.replay_window),
            );
        }
        let kdr = config.key_derivation_rate;
        if kdr != 0 && (!kdr.is_power_of_two() || kdr > MAX_KEY_DERIVATION_RATE) {
            return bad("key_derivation_rate", format!("must be 0 or a power of two up to 2^24, got {kdr}"));
        }
        if config.srtcp_first_index > MAX_SRTCP_INDEX {
            return bad("srtcp_first_index", format!("must be below 2^31, got {}", config.srtcp_first_index));
        }
        if config.mki.len() > MAX_MKI_LEN {
            return bad("mki", format!("at most {MAX_MKI_LEN} bytes, got {}", config.mki.len()));
        }
        let kdf = Kdf::new(master_key, master_salt).expect("key and salt lengths were checked against the profile");
        Ok(Session {
            profile,
            rtp: KeyEpoch::new(profile, &kdf, Direction::Rtp),
            rtcp: KeyEpoch::new(profile, &kdf, Direction::Rtcp),
            kdf,
            config,
            streams: Vec::new(),
        })
    }

    /// The protection profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The session parameters.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Bytes `protect_rtp` adds to a packet (MKI and tag).
    pub fn rtp_overhead(&self) -> usize {
        self.profile.rtp_tag_len() + self.config.mki.len()
    }

    /// Bytes `protect_rtcp` adds to a packet (SRTCP index, MKI and tag).
    pub fn rtcp_overhead(&self) -> usize {
        SRTCP_INDEX_LEN + self.profile.rtcp_tag_len() + self.config.mki.len()
    }

    fn find_stream(&self, ssrc: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.ssrc == ssrc)
    }

    fn stream(&mut self, ssrc: u32) -> &mut Stream {
        let at = match self.find_stream(ssrc) {
            Some(at) => at,
            None => {
                self.streams.push(Stream {
                    ssrc,
                    roc_hint: 0,
                    rtp_sent: ReplayWindow::new(self.config.replay_window),
                    rtp_received: ReplayWindow::new(self.config.replay_window),
                    rtcp_next: self.config.srtcp_first_index,
                    rtcp_received: ReplayWindow::new(self.config.replay_window),
                });
                self.streams.len() - 1
            }
        };
        &mut self.streams[at]
    }

    /// The roll-over counter of `ssrc`: of the highest SRTP index sent or
    /// received, or the one set with `set_roc` before any packet (0 for an
    /// SSRC never seen).
    pub fn roc(&self, ssrc: u32) -> u32 {
        let Some(at) = self.find_stream(ssrc) else { return 0 };
        let stream = &self.streams[at];
        match stream.rtp_sent.highest().max(stream.rtp_received.highest()) {
            Some(highest) => (highest >> 16) as u32,
            None => stream.roc_hint,
        }
    }

    /// Sets the roll-over counter of `ssrc` in both directions (after a
    /// re-INVITE, or for a receiver joining a stream late), keeping the
    /// highest sequence number. The SSRC's lists of SRTP indices sent and
    /// received start afresh.
    pub fn set_roc(&mut self, ssrc: u32, roc: u32) {
        let with_roc = |index: u64| u64::from(roc) << 16 | (index & 0xffff);
        let stream = self.stream(ssrc);
        stream.roc_hint = roc;
        for window in [&mut stream.rtp_sent, &mut stream.rtp_received] {
            let highest = window.highest().map(with_roc);
            window.reset(highest);
        }
    }

    /// Protects an RTP packet into `out`, which must hold
    /// `packet.len() + rtp_overhead()` bytes; returns that length. An index
    /// protected before is refused with `SrtpError::Replay` (unless
    /// `allow_repeat_tx`), as is one behind the replay window.
    pub fn protect_rtp(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let header = RtpHeader::parse(packet)?;
        let (header_len, ssrc, len) = (header.len, header.ssrc, packet.len());
        let total = len + self.rtp_overhead();
        check_output(out, total)?;
        let allow_repeat = self.config.allow_repeat_tx;
        let stream = self.stream(ssrc);
        let index = stream.index(&stream.rtp_sent, header.sequence_number);
        if index > MAX_RTP_INDEX {
            return Err(SrtpError::IndexExhausted { kind: PacketKind::Srtp });
        }
        match stream.rtp_sent.check(index) {
            Ok(()) => stream.rtp_sent.accept(index),
            Err(ReplayKind::Duplicate) if allow_repeat => {}
            Err(reason) => return Err(SrtpError::Replay { kind: PacketKind::Srtp, reason, index }),
        }

        let transform = self.rtp.at(self.profile, &self.kdf, self.config.key_derivation_rate, index);
        let mki = &self.config.mki;
        let out = &mut out[..total];
        out[..len].copy_from_slice(packet);
        match transform {
            // header || encrypted payload || MKI || tag(header || payload || ROC)
            Transform::Cm(cm) => {
                cm.crypt(ssrc, index, &mut out[header_len..len]);
                let roc = ((index >> 16) as u32).to_be_bytes();
                let (authenticated, trailer) = out.split_at_mut(len);
                trailer[..mki.len()].copy_from_slice(mki);
                cm.sign(&[authenticated, &roc], &mut trailer[mki.len()..]);
            }
            // header || ciphertext || tag || MKI (RFC 7714 section 8.1)
            Transform::Gcm(gcm) => {
                let (head, rest) = out.split_at_mut(header_len);
                let (body, trailer) = rest.split_at_mut(len - header_len);
                let tag = gcm.seal(ssrc, index, head, body);
                trailer[..GCM_TAG_LEN].copy_from_slice(&tag);
                trailer[GCM_TAG_LEN..].copy_from_slice(mki);
            }
        }
        Ok(total)
    }

    /// Checks and decrypts an SRTP packet into `out`, which must be at least
    /// as long as `packet`; returns the length of the RTP packet. Nothing
    /// changes unless the packet is authentic and new.
    pub fn unprotect_rtp(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let header = RtpHeader::parse(packet)?;
        let (header_len, ssrc, len) = (header.len, header.ssrc, packet.len());
        let (tag_len, mki_len) = (self.profile.rtp_tag_len(), self.config.mki.len());
        if len < header_len + tag_len + mki_len {
            return Err(short_trailer("auth tag", header_len, tag_len + mki_len, len));
        }
        let body_end = len - tag_len - mki_len;
        let (mki_at, tag_at) =
            if self.profile.is_aead() { (len - mki_len, body_end) } else { (body_end, body_end + mki_len) };
        if packet[mki_at..mki_at + mki_len] != self.config.mki[..] {
            return Err(SrtpError::Authentication { kind: PacketKind::Srtp, reason: AuthFailure::UnknownMki });
        }
        check_output(out, len)?;

        let stream_at = self.find_stream(ssrc);
        let seq = header.sequence_number;
        let index = stream_at.map_or(u64::from(seq), |at| {
            let stream = &self.streams[at];
            stream.index(&stream.rtp_received, seq)
        });
        if index > MAX_RTP_INDEX {
            return Err(SrtpError::IndexExhausted { kind: PacketKind::Srtp });
        }
        if let Some(at) = stream_at {
            self.streams[at].rtp_received.check(index).map_err(|reason| SrtpError::Replay {
                kind: PacketKind::Srtp,
                reason,
                index,
            })?;
        }

        let transform = self.rtp.at(self.profile, &self.kdf, self.config.key_derivation_rate, index);
        let tag = &packet[tag_at..tag_at + tag_len];
        let authentic = match transform {
            Transform::Cm(cm) => {
                let roc = ((index >> 16) as u32).to_be_bytes();
                let authentic = cm.verify(&[&packet[..body_end], &roc], tag);
                if authentic {
                    out[..body_end].copy_from_slice(&packet[..body_end]);
                    cm.crypt(ssrc, index, &mut out[header_len..body_end]);
                }
                authentic
            }
            Transform::Gcm(gcm) => {
                out[..header_len].copy_from_slice(&packet[..header_len]);
                let (head, body) = (&packet[..header_len], &packet[header_len..body_end]);
                gcm.open(ssrc, index, head, body, tag, &mut out[header_len..body_end])
            }
        };
        if !authentic {
            return Err(SrtpError::Authentication { kind: PacketKind::Srtp, reason: AuthFailure::TagMismatch });
        }
        self.stream(ssrc).rtp_received.accept(index);
        Ok(body_end)
    }

    /// Protects a (compound) RTCP packet into `out`, which must hold
    /// `packet.len() + rtcp_overhead()` bytes; returns that length. The
    /// packet is always encrypted (E flag set).
    pub fn protect_rtcp(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let ssrc = rtcp_sender_ssrc(packet)?;
        let len = packet.len();
        let total = len + self.rtcp_overhead();
        check_output(out, total)?;
        let stream = self.stream(ssrc);
        let index = stream.rtcp_next;
        if index > MAX_SRTCP_INDEX {
            return Err(SrtpError::IndexExhausted { kind: PacketKind::Srtcp });
        }
        stream.rtcp_next = index + 1;

        let transform = self.rtcp.at(self.profile, &self.kdf, self.config.key_derivation_rate, u64::from(index));
        let mki = &self.config.mki;
        let e_index = (SRTCP_E_FLAG | index).to_be_bytes();
        let out = &mut out[..total];
        out[..len].copy_from_slice(packet);
        match transform {
            // header || encrypted rest || E|index || MKI || tag(all before MKI)
            Transform::Cm(cm) => {
                cm.crypt(ssrc, u64::from(index), &mut out[RTCP_HEADER_LEN..len]);
                out[len..len + SRTCP_INDEX_LEN].copy_from_slice(&e_index);
                let (authenticated, trailer) = out.split_at_mut(len + SRTCP_INDEX_LEN);
                trailer[..mki.len()].copy_from_slice(mki);
                cm.sign(&[authenticated], &mut trailer[mki.len()..]);
            }
            // header || ciphertext || tag || E|index || MKI; the AAD is the
            // header and the E|index word (RFC 7714 section 9.1)
            Transform::Gcm(gcm) => {
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(&packet[..RTCP_HEADER_LEN]);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&e_index);
                let tag = gcm.seal(ssrc, u64::from(index), &aad, &mut out[RTCP_HEADER_LEN..len]);
                let trailer = &mut out[len..];
                trailer[..GCM_TAG_LEN].copy_from_slice(&tag);
                trailer[GCM_TAG_LEN..GCM_TAG_LEN + SRTCP_INDEX_LEN].copy_from_slice(&e_index);
                trailer[GCM_TAG_LEN + SRTCP_INDEX_LEN..].copy_from_slice(mki);
            }
        }
        Ok(total)
    }

    /// Checks and (when its E flag is set) decrypts an SRTCP packet into
    /// `out`, which must be at least as long as `packet`; returns the length
    /// of the RTCP packet. Nothing changes unless the packet is authentic
    /// and new.
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let ssrc = rtcp_sender_ssrc(packet)?;
        let len = packet.len();
        let (tag_len, mki_len) = (self.profile.rtcp_tag_len(), self.config.mki.len());
        let trailer_len = SRTCP_INDEX_LEN + tag_len + mki_len;
        if len < RTCP_HEADER_LEN + trailer_len {
            return Err(short_trailer("srtcp index", RTCP_HEADER_LEN, trailer_len, len));
        }
        let body_end = len - trailer_len;
        let (tag_at, index_at, mki_at) = if self.profile.is_aead() {
            (body_end, body_end + tag_len, body_end + tag_len + SRTCP_INDEX_LEN)
        } else {
            (body_end + SRTCP_INDEX_LEN + mki_len, body_end, body_end + SRTCP_INDEX_LEN)
        };
        if packet[mki_at..mki_at + mki_len] != self.config.mki[..] {
            return Err(SrtpError::Authentication { kind: PacketKind::Srtcp, reason: AuthFailure::UnknownMki });
        }
        check_output(out, len)?;

        let word = be32(packet, index_at);
        let encrypted = word & SRTCP_E_FLAG != 0;
        let index = word & MAX_SRTCP_INDEX;
        if let Some(at) = self.find_stream(ssrc) {
            self.streams[at].rtcp_received.check(u64::from(index)).map_err(|reason| SrtpError::Replay {
                kind: PacketKind::Srtcp,
                reason,
                index: u64::from(index),
            })?;
        }

        let transform = self.rtcp.at(self.profile, &self.kdf, self.config.key_derivation_rate, u64::from(index));
        let tag = &packet[tag_at..tag_at + tag_len];
        let authentic = match transform {
            Transform::Cm(cm) => {
                let authentic = cm.verify(&[&packet[..index_at + SRTCP_INDEX_LEN]], tag);
                if authentic {
                    out[..body_end].copy_from_slice(&packet[..body_end]);
                    if encrypted {
                        cm.crypt(ssrc, u64::from(index), &mut out[RTCP_HEADER_LEN..body_end]);
                    }
                }
                authentic
            }
            Transform::Gcm(gcm) if encrypted => {
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(&packet[..RTCP_HEADER_LEN]);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&packet[index_at..index_at + SRTCP_INDEX_LEN]);
                out[..RTCP_HEADER_LEN].copy_from_slice(&packet[..RTCP_HEADER_LEN]);
                let ciphertext = &packet[RTCP_HEADER_LEN..body_end];
                gcm.open(ssrc, u64::from(index), &aad, ciphertext, tag, &mut out[RTCP_HEADER_LEN..body_end])
            }
            // Unencrypted SRTCP under GCM: the whole packet and the E|index
            // word are AAD, the plaintext is empty (RFC 7714 section 9.2).
            // `out` assembles the AAD: it is longer than body_end + 4.
            Transform::Gcm(gcm) => {
                out[..body_end].copy_from_slice(&packet[..body_end]);
                out[body_end..body_end + SRTCP_INDEX_LEN]
                    .copy_from_slice(&packet[index_at..index_at + SRTCP_INDEX_LEN]);
                gcm.open(ssrc, u64::from(index), &out[..body_end + SRTCP_INDEX_LEN], &[], tag, &mut [])
            }
        };
        if !authentic {
            return Err(SrtpError::Authentication { kind: PacketKind::Srtcp, reason: AuthFailure::TagMismatch });
        }
        self.stream(ssrc).rtcp_received.accept(u64::from(index));
        Ok(body_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, payload_len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
        p.extend((0..payload_len).map(|i| i as u8));
        p
    }

    fn session(profile: Profile, config: SessionConfig) -> Session {
        let key = [7u8; 32];
        let salt = [9u8; 14];
        Session::new(profile, &key[..profile.key_len()], &salt[..profile.salt_len()], config).expect("valid test keys")
    }

    #[test]
    fn round_trip_every_profile_with_and_without_mki() {
        for profile in Profile::ALL {
            for mki in [vec![], vec![1, 2, 3]] {
                let config = SessionConfig { mki, ..SessionConfig::default() };
                let (mut tx, mut rx) = (session(profile, config.clone()), session(profile, config));
                let mut wire = [0u8; 400];
                let mut plain = [0u8; 400];
                for seq in [65534, 65535, 0, 1] {
                    let packet = rtp(seq, 50);
                    let n = tx.protect_rtp(&packet, &mut wire).expect("protect");
                    assert_eq!(n, packet.len() + tx.rtp_overhead());
                    let m = rx.unprotect_rtp(&wire[..n], &mut plain).expect("unprotect");
                    assert_eq!(&plain[..m], &packet[..]);
                    assert!(matches!(
                        rx.unprotect_rtp(&wire[..n], &mut plain),
                        Err(SrtpError::Replay { reason: ReplayKind::Duplicate, .. })
                    ));
                }
                assert_eq!(rx.roc(0xdeadbeef), 1);
                let rtcp = [0x81, 0xc9, 0, 1, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
                let n = tx.protect_rtcp(&rtcp, &mut wire).expect("protect rtcp");
                wire[n - 1] ^= 1;
                assert!(matches!(
                    rx.unprotect_rtcp(&wire[..n], &mut plain),
                    Err(SrtpError::Authentication { kind: PacketKind::Srtcp, .. })
                ));
                wire[n - 1] ^= 1;
                let m = rx.unprotect_rtcp(&wire[..n], &mut plain).expect("unprotect rtcp");
                assert_eq!(&plain[..m], &rtcp[..]);
            }
        }
    }

    #[test]
    fn short_buffers_and_truncated_packets_are_errors() {
        let mut s = session(Profile::AesCm128HmacSha1_80, SessionConfig::default());
        let packet = rtp(1, 10);
        let mut small = [0u8; 20];
        assert_eq!(s.protect_rtp(&packet, &mut small), Err(SrtpError::OutputTooSmall { needed: 32, available: 20 }));
        let mut out = [0u8; 64];
        for len in 0..packet.len() {
            assert!(matches!(s.unprotect_rtp(&packet[..len], &mut out), Err(SrtpError::Parse(_))));
            assert!(matches!(s.unprotect_rtcp(&packet[..len], &mut out), Err(SrtpError::Parse(_))));
        }
    }

    #[test]
    fn a_sender_never_reuses_an_index_unless_allowed() {
        let mut wire = [0u8; 100];
        let mut s = session(Profile::AesCm128HmacSha1_80, SessionConfig::default());
        s.protect_rtp(&rtp(500, 4), &mut wire).expect("first use");
        let again = s.protect_rtp(&rtp(500, 4), &mut wire);
        assert!(matches!(again, Err(SrtpError::Replay { reason: ReplayKind::Duplicate, index: 500, .. })));
        s.protect_rtp(&rtp(700, 4), &mut wire).expect("ahead");
        let old = s.protect_rtp(&rtp(100, 4), &mut wire);
        assert!(matches!(old, Err(SrtpError::Replay { reason: ReplayKind::TooOld, .. })));
        let mut r =
            session(Profile::AesCm128HmacSha1_80, SessionConfig { allow_repeat_tx: true, ..SessionConfig::default() });
        let first = r.protect_rtp(&rtp(500, 4), &mut wire).expect("first use");
        let copy = wire;
        assert_eq!(r.protect_rtp(&rtp(500, 4), &mut wire), Ok(first));
        assert_eq!(wire, copy);
    }

    #[test]
    fn rejects_bad_configuration() {
        let bad = |config: SessionConfig| Session::new(Profile::AeadAes128Gcm, &[0; 16], &[0; 12], config).err();
        let default = SessionConfig::default;
        assert_eq!(bad(SessionConfig { replay_window: 32, ..default() }).map(|e| e.argument), Some("replay_window"));
        assert_eq!(
            bad(SessionConfig { key_derivation_rate: 6, ..default() }).map(|e| e.argument),
            Some("key_derivation_rate")
        );
        assert_eq!(bad(SessionConfig { mki: vec![0; 129], ..default() }).map(|e| e.argument), Some("mki"));
        assert!(Session::new(Profile::AeadAes128Gcm, &[0; 16], &[0; 14], default()).is_err());
    }
}
