//! Two call legs in one call over a simulated network: what one sends, the
//! other hears, for every codec, with and without SRTP, at 8 and 16 kHz,
//! on a clean network and with loss, jitter and reordering.
mod common;

use common::*;
use rtpcore_engine::{LegConfig, LegEvent};
use rtpcore_proto::jitter::Codec;

/// A writes 2 s of speech-like audio at once (a bursty TTS), B writes
/// nothing; returns the correlation of what B heard with what A sent.
fn one_way(codec: Codec, app_rate: u32, srtp: bool, impairment: Impairment, seed: u64) -> (f64, Call) {
    let mut config = LegConfig::new(codec, "x", 0);
    config.app_sample_rate = app_rate;
    let mut call = Call::new(&config, srtp, impairment, seed);
    let signal = speechlike(app_rate, 2.0);
    call.legs[0].write_audio(&signal).expect("2 s fits the queue");
    call.run(2400, |_, _, _| {});
    let max_lag = app_rate as usize * 200 / 1000;
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
                // Without SRTP the first packet only counts towards latching,
                // so G.722's ADPCM decoder starts one packet late and takes
                // a moment to converge; G.711 has no state.
                let floor = match (codec, srtp) {
                    (Codec::G722, false) => 0.95,
                    (Codec::G722, true) => 0.985,
                    _ => 0.995,
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
                let floor = if codec == Codec::G722 { 0.9 } else { 0.97 };
                assert!(corr > floor, "{codec:?} {app_rate} srtp={srtp}: {corr:.3}");
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
    let ab = segment_correlation(&to_b, &call.received_pcm[1], 4000, 3200);
    let ba = segment_correlation(&to_a, &call.received_pcm[0], 4000, 3200);
    assert!(ab > 0.95 && ba > 0.95, "{ab:.3} {ba:.3}");
    // Both latched onto each other and exchanged RTCP with round trips.
    for i in 0..2 {
        assert!(call.events[i].iter().any(|e| matches!(e, LegEvent::RemoteLatched { .. })), "{i}");
    }
}

/// Recorded speech (the shared samples) at its own rate through G.722 and
/// PCMU, SRTP on, over the impaired network.
#[test]
fn shared_speech_samples_cross_the_impaired_network() {
    for (file, codec) in [("s01_en-us_m_16k.wav", Codec::G722), ("s02_en-gb_f3_8k.wav", Codec::Pcmu)] {
        let (rate, speech) = read_wav(&shared_path(&["audio", file]));
        let mut config = LegConfig::new(codec, "x", 0);
        config.app_sample_rate = rate;
        let mut call = Call::new(&config, true, IMPAIRED, 21);
        call.legs[0].write_audio(&speech).unwrap();
        let ms = speech.len() as i64 * 1000 / i64::from(rate) + 500;
        call.run(ms, |_, _, _| {});
        let corr = segment_correlation(&speech, &call.received_pcm[1], rate as usize / 4, rate as usize / 5);
        eprintln!("{file} over {codec:?}: correlation {corr:.3}");
        assert!(corr > 0.95, "{file}: {corr:.3}");
    }
}
