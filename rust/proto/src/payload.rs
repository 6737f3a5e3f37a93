//! The RTP payload formats that audio telephony needs besides the codecs:
//! RFC 4733 telephone events (DTMF) and RFC 3389 comfort noise, as they are
//! on the wire. Generating and estimating the noise itself is the codec
//! layer's job.

use crate::error::{BuildError, Layer, ParseError};

/// The DTMF digits of events 0..=15 (RFC 4733 section 3.2).
const DTMF_DIGITS: &[u8; 16] = b"0123456789*#ABCD";

/// One RFC 4733 named event (section 2.3): a DTMF digit, a tone or a line
/// event, with its volume and how long it has lasted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TelephoneEvent {
    /// Event code: 0..=15 are DTMF `0-9 * # A-D`.
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63 (only meaningful for DTMF).
    pub volume: u8,
    /// Duration so far, in timestamp units from the event's start.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Length of one event on the wire.
    pub const LEN: usize = 4;

    /// Parses the event payload of an RTP packet: exactly one 4-byte event.
    /// The reserved R bit is ignored, as section 2.3.2 asks of receivers.
    pub fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        if buf.len() != Self::LEN {
            let reason = format!("a telephone-event payload is {} bytes, not {}", Self::LEN, buf.len());
            return Err(ParseError::new(Layer::Payload, "length", buf.len().min(Self::LEN), reason));
        }
        Ok(TelephoneEvent {
            event: buf[0],
            end: buf[1] & 0x80 != 0,
            volume: buf[1] & 0x3F,
            duration: u16::from_be_bytes([buf[2], buf[3]]),
        })
    }

    /// Appends the 4-byte payload to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        if self.volume > 0x3F {
            return Err(BuildError::new("volume", format!("{} does not fit in 6 bits", self.volume)));
        }
        out.extend_from_slice(&[self.event, u8::from(self.end) << 7 | self.volume]);
        out.extend_from_slice(&self.duration.to_be_bytes());
        Ok(())
    }

    /// The DTMF digit this event stands for, if it is one.
    pub fn digit(&self) -> Option<char> {
        DTMF_DIGITS.get(usize::from(self.event)).map(|&d| char::from(d))
    }

    /// The event code of a DTMF digit (`0-9 * # A-D`, letters in either case).
    pub fn event_of_digit(digit: char) -> Option<u8> {
        let upper = digit.to_ascii_uppercase();
        DTMF_DIGITS.iter().position(|&d| char::from(d) == upper).map(|i| i as u8)
    }
}

/// An RFC 3389 comfort noise payload: the noise level and, optionally, the
/// quantized reflection coefficients of its spectral envelope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ComfortNoise {
    /// Noise level in -dBov, 0..=127 (section 3.1).
    pub level: u8,
    /// Quantized reflection coefficients, one byte each (section 3.2); the
    /// model order is their count.
    pub coefficients: Vec<u8>,
}

impl ComfortNoise {
    /// Parses a comfort noise payload.
    pub fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let Some((&level, coefficients)) = buf.split_first() else {
            return Err(ParseError::truncated(Layer::Payload, "level", 0, 1, 0));
        };
        if level > 0x7F {
            return Err(ParseError::new(Layer::Payload, "level", 0, format!("the top bit of the level byte must be 0 ({level:#04x})")));
        }
        Ok(ComfortNoise { level, coefficients: coefficients.to_vec() })
    }

    /// Appends the payload to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        if self.level > 0x7F {
            return Err(BuildError::new("level", format!("{} is out of range 0..=127", self.level)));
        }
        out.push(self.level);
        out.extend_from_slice(&self.coefficients);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4733_figure_layout() {
        // Digit 5, end, volume 10, duration 800.
        let e = TelephoneEvent::parse(&[5, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(e, TelephoneEvent { event: 5, end: true, volume: 10, duration: 800 });
        let mut out = Vec::new();
        e.write(&mut out).unwrap();
        assert_eq!(out, [5, 0x8A, 0x03, 0x20]);
        // The reserved bit is ignored.
        assert_eq!(TelephoneEvent::parse(&[5, 0xCA, 0x03, 0x20]).unwrap(), e);
    }

    #[test]
    fn every_event_code_round_trips_and_digits_map_both_ways() {
        for event in 0..=255u8 {
            let e = TelephoneEvent { event, end: event % 2 == 0, volume: event % 64, duration: u16::from(event) * 7 };
            let mut out = Vec::new();
            e.write(&mut out).unwrap();
            assert_eq!(TelephoneEvent::parse(&out).unwrap(), e);
            if let Some(d) = e.digit() {
                assert_eq!(TelephoneEvent::event_of_digit(d), Some(event));
            }
        }
        assert_eq!(TelephoneEvent::event_of_digit('#'), Some(11));
        assert_eq!(TelephoneEvent::event_of_digit('d'), Some(15));
        assert_eq!(TelephoneEvent::event_of_digit('x'), None);
    }

    #[test]
    fn wrong_lengths_and_values_are_errors() {
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]).unwrap_err().field, "length");
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3, 4, 5]).unwrap_err().offset, 4);
        assert!(TelephoneEvent { volume: 64, ..Default::default() }.write(&mut Vec::new()).is_err());
        assert_eq!(ComfortNoise::parse(&[]).unwrap_err().field, "level");
        assert_eq!(ComfortNoise::parse(&[0x80]).unwrap_err().field, "level");
    }

    #[test]
    fn comfort_noise_round_trips() {
        let cn = ComfortNoise::parse(&[40, 1, 2, 255]).unwrap();
        assert_eq!(cn, ComfortNoise { level: 40, coefficients: vec![1, 2, 255] });
        let mut out = Vec::new();
        cn.write(&mut out).unwrap();
        assert_eq!(out, [40, 1, 2, 255]);
    }
}
