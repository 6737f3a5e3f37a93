//! The one error type every parser in the core returns.

use std::fmt;

/// The protocol layer a parse error was found in; the Python side exposes it
/// as `ParseError.layer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// An RTP packet (RFC 3550 section 5).
    Rtp,
    /// An RTP header extension block (RFC 8285).
    RtpExtension,
    /// An RTCP packet (RFC 3550 section 6, RFC 4585, RFC 3611).
    Rtcp,
    /// An RTP payload format (RFC 4733 events, RFC 3389 comfort noise).
    Payload,
    /// An SRTP or SRTCP packet (RFC 3711).
    Srtp,
    /// A capture file (pcap, pcapng) and the link, IP and UDP layers in it.
    Capture,
}

impl Layer {
    /// The lowercase name used in messages and in `ParseError.layer`.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Rtp => "rtp",
            Layer::RtpExtension => "rtp-extension",
            Layer::Rtcp => "rtcp",
            Layer::Payload => "payload",
            Layer::Srtp => "srtp",
            Layer::Capture => "capture",
        }
    }
}

/// Why some bytes could not be parsed: what was wrong, in which layer and
/// field, and at which byte offset of the buffer handed to the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The layer the bad field belongs to.
    pub layer: Layer,
    /// The field that is wrong, by its name in the RFC (`"version"`,
    /// `"padding"`, `"length"` ...).
    pub field: &'static str,
    /// Byte offset of the field in the buffer given to the parser.
    pub offset: usize,
    /// What is wrong with it, in words.
    pub reason: String,
}

impl ParseError {
    /// A parse error in `layer` at `offset`, naming the bad `field`.
    pub fn new(layer: Layer, field: &'static str, offset: usize, reason: impl Into<String>) -> Self {
        ParseError { layer, field, offset, reason: reason.into() }
    }

    /// The buffer ended before `field` (which needs `needed` bytes from
    /// `offset`) was complete; `available` is the whole buffer's length.
    pub fn truncated(layer: Layer, field: &'static str, offset: usize, needed: usize, available: usize) -> Self {
        ParseError::new(
            layer,
            field,
            offset,
            format!("truncated: {field} needs {needed} bytes at offset {offset}, buffer has {available}"),
        )
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} at offset {}: {}", self.layer.name(), self.field, self.offset, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Why a packet could not be built from the values given: which field (by
/// the name the builder's caller used) and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// The field or argument that holds a value the wire format cannot carry.
    pub field: &'static str,
    /// What is wrong with it, in words.
    pub reason: String,
}

impl BuildError {
    /// A build error naming the bad `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        BuildError { field, reason: reason.into() }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for BuildError {}
