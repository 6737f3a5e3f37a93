//! RFC 4733 telephone-event payloads, read just far enough to pass them
//! around the jitter buffer. The one function here is the seam where a full
//! RFC 4733 parser can take over.

use crate::error::{Layer, ParseError};

/// One RFC 4733 telephone-event payload (section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The event code (0-9, 10 = `*`, 11 = `#`, 12-15 = A-D, ...).
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0..63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

/// Parses the first 4-byte block of a telephone-event payload.
pub fn parse_telephone_event(payload: &[u8]) -> Result<TelephoneEvent, ParseError> {
    let block = payload.get(..4).ok_or_else(|| ParseError::truncated(Layer::Payload, "event", 0, 4, payload.len()))?;
    Ok(TelephoneEvent {
        event: block[0],
        end: block[1] & 0x80 != 0,
        volume: block[1] & 0x3f,
        duration: u16::from_be_bytes([block[2], block[3]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc4733_fields() {
        let e = parse_telephone_event(&[11, 0x8a, 0x03, 0x20]).expect("4 bytes");
        assert_eq!(e, TelephoneEvent { event: 11, end: true, volume: 10, duration: 800 });
        assert!(parse_telephone_event(&[1, 2, 3]).is_err());
    }
}
