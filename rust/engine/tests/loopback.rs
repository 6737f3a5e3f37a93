//! Two call legs in one call over a simulated network: what one sends, the
//! other hears, for every codec, with and without SRTP, at 8 and 16 kHz,
//! on a clean network and with loss, jitter and reordering.
mod common;

use common::*;
use rtpcore_engine::{LegConfig, LegEvent};
use rtpcore_proto::jitter::Codec;

/// A writes `seconds` of speech-like audio at once (a bursty TTS), B writes
/// nothing; returns the correlation of what B heard with what A sent.
fn one_way(codec: Codec, app_rate: u32, srtp: bool, impairment: Impairment, seed: u64) -> (f64, Call) {
    let mut config = LegConfig::new(codec, "x", 0);
    config.app_sample_rate = app_rate;
    let mut call = Call::new(&config, srtp, impairment, seed);
    let signal = speechlike(app_rate, 3.0);
    call.legs[0].write_audio(&signal).expect("3 s fits the queue");
    call.run(3600, |_, _, _| {});
    let max_lag = app_rate as usize * 300 / 1000;
    let corr = segment_correlation(&signal, &call.received_pcm[1], app_rate as usize / 4, max_lag);
    eprintln!("{codec:?} {app_rate} Hz srtp={srtp} {impairment:?}: correlation {corr:.3}");
    (corr, call)
}

#[test]
fn audio_crosses_a_clean_network() {
    for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722] {
        for app_rate in [8000, 16000] {
            for srtp in [false, true] {
                let (corr, call) = one_way(codec, app_rate, srtp, CLEAN, 1);
                // G.722's QMF filter pair delays by 23 samples at 16 kHz:
                // half a sample at 8 kHz, which whole-sample lags cannot
                // undo, so that case correlates less without being worse.
                let floor = match (codec, app_rate) {
                    (Codec::G722, 8000) => 0.92,
                    (Codec::G722, _) => 0.95,
                    _ => 0.99,
                };
                assert!(corr > floor, "{codec:?} {app_rate} srtp={srtp}: {corr:.3}");
                let stats = call.legs[1].stats();
                assert_eq!(stats.dropped.total(), stats.dropped.get(rtpcore_engine::DropReason::Latching), "{stats:?}");
                assert_eq!(stats.jitter.lost, 0, "{codec:?}");
            }
        }
    }
}

#[test]
fn audio_survives_loss_jitter_and_reordering() {
    for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722] {
        for app_rate in [8000, 16000] {
            for srtp in [false, true] {
                let (corr, call) = one_way(codec, app_rate, srtp, IMPAIRED, 7);
                assert!(corr > 0.9, "{codec:?} {app_rate} srtp={srtp}: {corr:.3}");
                let stats = call.legs[1].stats();
                assert!(stats.session.packets_lost > 0, "the network lost packets: {stats:?}");
                assert!(stats.jitter.concealed_ms > 0.0);
                let quality = stats.quality.expect("media came");
                assert!((1.0..4.5).contains(&quality.mos_cq), "{quality:?}");
            }
        }
    }
}

#[test]
fn both_directions_at_once() {
    let mut config = LegConfig::new(Codec::G722, "x", 0);
    config.app_sample_rate = 16000;
    let mut call = Call::new(&config, true, IMPAIRED, 3);
    let to_b = speechlike(16000, 2.0);
    let to_a: Vec<i16> = speechlike(16000, 2.3)[6000..].to_vec();
    call.legs[0].write_audio(&to_b).unwrap();
    call.legs[1].write_audio(&to_a).unwrap();
    call.run(2600, |_, _, _| {});
    let ab = segment_correlation(&to_b, &call.received_pcm[1], 4000, 4800);
    let ba = segment_correlation(&to_a, &call.received_pcm[0], 4000, 4800);
    assert!(ab > 0.8 && ba > 0.8, "{ab:.3} {ba:.3}");
    // Both latched onto each other and exchanged RTCP with round trips.
    for i in 0..2 {
        assert!(call.events[i].iter().any(|e| matches!(e, LegEvent::RemoteLatched { .. })), "{i}");
    }
}
