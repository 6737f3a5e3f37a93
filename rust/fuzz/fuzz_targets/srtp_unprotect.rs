//! SRTP/SRTCP unprotect on arbitrary bytes, and on packets the fuzzer had
//! protected and then damaged: an operation-sequence fuzzer over one sender
//! and one receiver session.
//!
//! Input: one byte picks the profile and whether an MKI is used; then a run
//! of operations, each `op, len, len bytes`. Nothing may panic, and a packet
//! that unprotects must come back as the bytes that were protected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtpcore_proto::srtp::{Profile, Session, SessionConfig, SrtpError};

const KEY: [u8; 32] = [0x2b; 32];
const SALT: [u8; 14] = [0x5c; 14];

fn session(profile: Profile, mki: &[u8]) -> Session {
    let config = SessionConfig { mki: mki.to_vec(), replay_window: 64, ..SessionConfig::default() };
    Session::new(profile, &KEY[..profile.key_len()], &SALT[..profile.salt_len()], config)
        .expect("the fuzzer's fixed key, salt and config are valid for every profile")
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else { return };
    let profile = Profile::ALL[usize::from(setup) % Profile::ALL.len()];
    let mki: &[u8] = if setup & 0x80 != 0 { &[1, 2, 3] } else { &[] };
    let (mut sender, mut receiver) = (session(profile, mki), session(profile, mki));
    let mut wire = vec![0u8; 512];
    let mut plain = vec![0u8; 512];
    while let [op, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let rtcp = op & 1 != 0;
        match (op >> 1) & 3 {
            // Arbitrary bytes straight into the receiver.
            0 => {
                let result = if rtcp {
                    receiver.unprotect_rtcp(chunk, &mut plain)
                } else {
                    receiver.unprotect_rtp(chunk, &mut plain)
                };
                if let Ok(n) = result {
                    assert!(n <= chunk.len());
                }
            }
            // Protect, maybe flip one bit, unprotect.
            1 | 2 => {
                let protected =
                    if rtcp { sender.protect_rtcp(chunk, &mut wire) } else { sender.protect_rtp(chunk, &mut wire) };
                let Ok(n) = protected else { continue };
                let flip = (op >> 3) != 0 && (op >> 1) & 3 == 2;
                if flip {
                    let at = usize::from(op >> 3) * 7 % n;
                    wire[at] ^= 1 << (op & 7);
                }
                let result = if rtcp {
                    receiver.unprotect_rtcp(&wire[..n], &mut plain)
                } else {
                    receiver.unprotect_rtp(&wire[..n], &mut plain)
                };
                match result {
                    Ok(m) => assert_eq!(&plain[..m], chunk, "an unprotected packet differs from what was protected"),
                    Err(SrtpError::Replay { .. } | SrtpError::Authentication { .. } | SrtpError::Parse(_)) => {
                        // Replays happen when the fuzzer repeats a sequence
                        // number; authentication and parse failures only
                        // after a flipped bit (or a receiver ROC that differs
                        // from the sender's, after set_roc).
                    }
                    Err(other) => panic!("unexpected error {other:?}"),
                }
            }
            // Re-synchronise a roll-over counter.
            _ => {
                let roc = u32::from(chunk.first().copied().unwrap_or(0));
                if rtcp {
                    receiver.set_roc(0, roc);
                } else {
                    sender.set_roc(0, roc);
                }
            }
        }
    }
});
