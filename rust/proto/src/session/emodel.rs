//! A per-call quality estimate: the ITU-T G.107 E-model (R factor and MOS)
//! from the codec, the one-way delay, the packet loss and its burstiness.
//!
//! R = Ro - Is - Id - Ie,eff + A (G.107 section 3.1). The electrical
//! parameters of the terminals (loudness ratings, sidetone, noise, echo
//! loss) are unknown to an RTP stack, so they stay at the G.107 defaults
//! (Table 3); what the network changes are the delays `T`, `Ta`, `Tr` and
//! the packet loss `Ppl` with its burst ratio `BurstR`.
//!
//! Wideband: G.722 is scored on the G.107.1 wideband scale, where a
//! transparent wideband connection rates 129 instead of about 93. This
//! module takes `Ro,WB - Is,WB = 129` (the G.107.1 defaults), the delay
//! impairment `Id` of the narrowband model (G.107.1 reuses G.107's delay
//! formulas), `Ie,eff,WB = Ie,WB + (129 - Ie,WB) Ppl / (Ppl/BurstR + Bpl)`,
//! and maps to MOS through `R / 1.29` and the G.107 Annex B curve, so that
//! narrowband and wideband calls share one MOS scale.

/// The G.107 parameters this model takes; [`Default`] gives the G.107
/// Table 3 default values (which rate R = 93.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EModelParams {
    /// Send loudness rating SLR, dB.
    pub slr: f64,
    /// Receive loudness rating RLR, dB.
    pub rlr: f64,
    /// Sidetone masking rating STMR, dB.
    pub stmr: f64,
    /// Listener sidetone rating LSTR, dB.
    pub lstr: f64,
    /// D-value of the telephone, send side.
    pub ds: f64,
    /// D-value of the telephone, receive side.
    pub dr: f64,
    /// Talker echo loudness rating TELR, dB.
    pub telr: f64,
    /// Weighted echo path loss WEPL, dB.
    pub wepl: f64,
    /// Mean one-way delay of the echo path T, ms.
    pub t: f64,
    /// Round-trip delay in a 4-wire loop Tr, ms.
    pub tr: f64,
    /// Absolute delay in echo-free connections Ta, ms.
    pub ta: f64,
    /// Number of quantization distortion units qdu.
    pub qdu: f64,
    /// Equipment impairment factor Ie.
    pub ie: f64,
    /// Packet-loss robustness factor Bpl.
    pub bpl: f64,
    /// Random packet-loss probability Ppl, percent.
    pub ppl: f64,
    /// Burst ratio BurstR (1 for random loss).
    pub burst_r: f64,
    /// Circuit noise referred to the 0 dBr point Nc, dBm0p.
    pub nc: f64,
    /// Noise floor at the receive side Nfor, dBmp.
    pub nfor: f64,
    /// Room noise at the send side Ps, dB(A).
    pub ps: f64,
    /// Room noise at the receive side Pr, dB(A).
    pub pr: f64,
    /// Advantage factor A.
    pub a: f64,
    /// Minimum perceivable delay mT, ms (G.107 since 2011).
    pub mt: f64,
    /// Delay sensitivity sT (G.107 since 2011).
    pub st: f64,
}

impl Default for EModelParams {
    fn default() -> Self {
        EModelParams {
            slr: 8.0,
            rlr: 2.0,
            stmr: 15.0,
            lstr: 18.0,
            ds: 3.0,
            dr: 3.0,
            telr: 65.0,
            wepl: 110.0,
            t: 0.0,
            tr: 0.0,
            ta: 0.0,
            qdu: 1.0,
            ie: 0.0,
            bpl: 4.3,
            ppl: 0.0,
            burst_r: 1.0,
            nc: -70.0,
            nfor: -64.0,
            ps: 35.0,
            pr: 35.0,
            a: 0.0,
            mt: 100.0,
            st: 1.0,
        }
    }
}

/// The terms of the R factor, for inspection and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RTerms {
    /// Basic signal-to-noise ratio Ro.
    pub ro: f64,
    /// Simultaneous impairment factor Is.
    pub is: f64,
    /// Delay impairment factor Id = Idte + Idle + Idd.
    pub id: f64,
    /// Absolute-delay part of Id.
    pub idd: f64,
    /// Effective equipment impairment factor Ie,eff.
    pub ie_eff: f64,
    /// The transmission rating R.
    pub r: f64,
}

fn log10(x: f64) -> f64 {
    x.log10()
}

/// `(1 + x^n)^(1/n)` for the integer exponents of G.107's smoothing terms.
fn smooth(x: f64, n: i32) -> f64 {
    (1.0 + x.powi(n)).powf(1.0 / f64::from(n))
}

impl EModelParams {
    /// Computes R and its terms with the formulas of G.107 section 3.
    pub fn terms(&self) -> RTerms {
        let p = self;
        // 3.2: basic signal-to-noise ratio.
        let olr = p.slr + p.rlr;
        let nfo = p.nfor + p.rlr;
        let pre = p.pr + 10.0 * log10(1.0 + 10f64.powf((10.0 - p.lstr) / 10.0));
        let nor = p.rlr - 121.0 + pre + 0.008 * (pre - 35.0).powi(2);
        let nos = p.ps - p.slr - p.ds - 100.0 + 0.004 * (p.ps - olr - p.ds - 14.0).powi(2);
        let no = 10.0
            * log10(
                10f64.powf(p.nc / 10.0) + 10f64.powf(nos / 10.0) + 10f64.powf(nor / 10.0) + 10f64.powf(nfo / 10.0),
            );
        let ro = 15.0 - 1.5 * (p.slr + no);
        // 3.3: simultaneous impairments (quantizing, sidetone, loudness).
        let q = 37.0 - 15.0 * log10(p.qdu);
        let g = 1.07 + 0.258 * q + 0.0602 * q * q;
        let z = 46.0 / 30.0 - g / 40.0;
        let y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0;
        let iq = 15.0 * log10(1.0 + 10f64.powf(y) + 10f64.powf(z));
        let stmro = -10.0 * log10(10f64.powf(-p.stmr / 10.0) + (-p.t / 4.0).exp() * 10f64.powf(-p.telr / 10.0));
        let ist = 12.0 * smooth((stmro - 13.0) / 6.0, 8) - 28.0 * smooth((stmro + 1.0) / 19.4, 35)
            - 13.0 * smooth((stmro - 3.0) / 33.0, 13)
            + 29.0;
        let xolr = olr + 0.2 * (64.0 + no - p.rlr);
        let iolr = 20.0 * (smooth(xolr / 8.0, 8) - xolr / 8.0);
        let is = iolr + ist + iq;
        // 3.4: delay impairments: talker echo, listener echo, absolute delay.
        let roe = -1.5 * (no - p.rlr);
        let mut terv = p.telr - 40.0 * log10((1.0 + p.t / 10.0) / (1.0 + p.t / 150.0)) + 6.0 * (-0.3 * p.t * p.t).exp();
        if p.stmr < 9.0 {
            // A weak sidetone masks less of the echo.
            terv += ist / 2.0;
        }
        let re = 80.0 + 2.5 * (terv - 14.0);
        let mut idte = ((roe - re) / 2.0 + ((roe - re).powi(2) / 4.0 + 100.0).sqrt() - 1.0) * (1.0 - (-p.t).exp());
        if p.stmr > 20.0 {
            idte = (idte * idte + ist * ist).sqrt();
        }
        let rle = 10.5 * (p.wepl + 7.0) * (p.tr + 1.0).powf(-0.25);
        let idle = (ro - rle) / 2.0 + ((ro - rle).powi(2) / 4.0 + 169.0).sqrt();
        let idd = if p.ta <= p.mt {
            0.0
        } else {
            let x = log10(p.ta / p.mt) / log10(2.0);
            let k = 6.0 * p.st;
            25.0 * ((1.0 + x.powf(k)).powf(1.0 / k) - 3.0 * (1.0 + (x / 3.0).powf(k)).powf(1.0 / k) + 2.0)
        };
        let id = idte + idle + idd;
        // 3.5: equipment impairment under packet loss.
        let ie_eff = effective_ie(p.ie, p.bpl, p.ppl, p.burst_r, 95.0);
        let r = ro - is - id - ie_eff + p.a;
        RTerms { ro, is, id, idd, ie_eff, r }
    }

    /// The transmission rating R.
    pub fn r_factor(&self) -> f64 {
        self.terms().r
    }
}

/// `Ie,eff = Ie + (max - Ie) Ppl / (Ppl/BurstR + Bpl)` (G.107 eq. 7-29;
/// `max` is 95 narrowband, 129 on the G.107.1 wideband scale).
fn effective_ie(ie: f64, bpl: f64, ppl: f64, burst_r: f64, max: f64) -> f64 {
    let ppl = ppl.clamp(0.0, 100.0);
    let burst_r = if burst_r.is_finite() && burst_r > 0.0 { burst_r } else { 1.0 };
    if ppl == 0.0 {
        return ie;
    }
    ie + (max - ie) * ppl / (ppl / burst_r + bpl)
}

/// MOS (conversational quality) from R, G.107 Annex B (B-4).
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        // The B-4 polynomial dips just under 1 for R below about 6.5 (its
        // slope at 0 is -0.007); the scale's floor is 1.
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).max(1.0)
    }
}

/// The codec's impairment values (G.113 Appendix I).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Ie (narrowband) or Ie,WB (wideband).
    pub ie: f64,
    /// Bpl.
    pub bpl: f64,
    /// Whether the codec is scored on the G.107.1 wideband scale.
    pub wideband: bool,
}

impl CodecImpairment {
    /// G.711 with packet loss concealment (G.711 Appendix I): Ie 0, Bpl 25.1
    /// (G.113 Appendix I).
    pub const G711_PLC: Self = CodecImpairment { ie: 0.0, bpl: 25.1, wideband: false };
    /// G.711 without concealment (silence in place of a lost packet): Ie 0,
    /// Bpl 4.3 (G.113 Appendix I).
    pub const G711_NO_PLC: Self = CodecImpairment { ie: 0.0, bpl: 4.3, wideband: false };
    /// G.722 at 64 kbit/s with concealment, on the wideband scale: Ie,WB 13
    /// and Bpl 31.1, the provisional wideband planning values as we know
    /// them from G.113 (not checked against the Recommendation's table here;
    /// build your own `CodecImpairment` when you have the current edition).
    pub const G722_PLC: Self = CodecImpairment { ie: 13.0, bpl: 31.1, wideband: true };
}

/// What the network did to a call, the inputs of [`estimate_quality`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityInputs {
    /// The codec's impairment values.
    pub codec: CodecImpairment,
    /// Mouth-to-ear one-way delay in milliseconds (network, jitter buffer,
    /// packetization).
    pub one_way_delay_ms: f64,
    /// Packets lost or discarded, percent.
    pub loss_percent: f64,
    /// The burst ratio (1 for random loss, above 1 for bursty loss).
    pub burst_r: f64,
}

/// The outcome of [`estimate_quality`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityEstimate {
    /// R on the codec's own scale (0..=100 narrowband, 0..=129 wideband).
    pub r: f64,
    /// R on the narrowband scale (wideband R / 1.29), what RFC 3611 XR and
    /// the MOS curve take.
    pub r_narrowband: f64,
    /// Conversational MOS (delay and echo included): MOS-CQ.
    pub mos_cq: f64,
    /// Listening MOS, the same model without the delay impairment: MOS-LQ.
    pub mos_lq: f64,
}

/// G.107.1: the wideband scale's top.
const WIDEBAND_R_MAX: f64 = 129.0;
/// G.107.1 Annex A: wideband R over this is the narrowband-scale R.
const WIDEBAND_TO_NARROWBAND: f64 = 1.29;

/// Estimates the call quality with the E-model; see the module notes for
/// the wideband choice. The one-way delay sets `T` and `Ta`, and `Tr` is
/// twice it (echo-controlled terminals, TELR at its default).
pub fn estimate_quality(inputs: &QualityInputs) -> QualityEstimate {
    let delay = if inputs.one_way_delay_ms.is_finite() { inputs.one_way_delay_ms.max(0.0) } else { 0.0 };
    let with_delay = |d: f64| {
        let mut p = EModelParams { t: d, ta: d, tr: 2.0 * d, ..Default::default() };
        let c = inputs.codec;
        if c.wideband {
            let id = p.terms().id;
            let ie = effective_ie(c.ie, c.bpl, inputs.loss_percent, inputs.burst_r, WIDEBAND_R_MAX);
            let r = (WIDEBAND_R_MAX - id - ie).clamp(0.0, WIDEBAND_R_MAX);
            (r, r / WIDEBAND_TO_NARROWBAND)
        } else {
            p.ie = c.ie;
            p.bpl = c.bpl;
            p.ppl = inputs.loss_percent;
            p.burst_r = inputs.burst_r;
            let r = p.r_factor().clamp(0.0, 100.0);
            (r, r)
        }
    };
    let (r, r_narrowband) = with_delay(delay);
    let (_, r_listening) = with_delay(0.0);
    QualityEstimate { r, r_narrowband, mos_cq: mos_from_r(r_narrowband), mos_lq: mos_from_r(r_listening) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_parameters_rate_93_2_and_mos_4_41() {
        let t = EModelParams::default().terms();
        // G.107 section 3.7: "R = 93.2" for all defaults.
        assert!((t.r - 93.2).abs() < 0.05, "{t:?}");
        // The well-known split: Ro 94.77, Is 1.41, Id 0.15.
        assert!((t.ro - 94.77).abs() < 0.01 && (t.is - 1.41).abs() < 0.01 && (t.id - 0.15).abs() < 0.01, "{t:?}");
        assert!((mos_from_r(t.r) - 4.41).abs() < 0.005);
    }

    #[test]
    fn mos_curve_tabulated_points() {
        // The R-to-MOS reference points of G.107 Annex B (user satisfaction
        // boundaries), given to two decimals there.
        for (r, mos) in [(90.0, 4.34), (80.0, 4.03), (70.0, 3.60), (60.0, 3.10), (50.0, 2.58)] {
            assert!((mos_from_r(r) - mos).abs() < 0.01, "R {r}");
        }
        assert_eq!(mos_from_r(-3.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        assert_eq!(mos_from_r(f64::NAN), 1.0);
        // Small positive R stays on the scale (the raw polynomial gives 0.99 at 4.6).
        assert!((0..=65).all(|tenths| mos_from_r(f64::from(tenths) / 10.0) == 1.0));
        assert!(mos_from_r(7.0) > 1.0);
    }

    #[test]
    fn absolute_delay_impairment_starts_above_mt() {
        let at = |ta: f64| EModelParams { ta, ..Default::default() }.terms().idd;
        assert_eq!(at(100.0), 0.0);
        // Ta = 2 mT: X = 1, Idd = 25 (2^(1/6) - 3 (1 + 3^-6)^(1/6) + 2).
        let x1 = 25.0 * (2f64.powf(1.0 / 6.0) - 3.0 * (1.0 + 3f64.powi(-6)).powf(1.0 / 6.0) + 2.0);
        assert!((at(200.0) - x1).abs() < 1e-9);
        assert!((at(200.0) - 3.04).abs() < 0.01);
        assert!(at(400.0) > at(300.0) && at(300.0) > at(200.0));
    }

    #[test]
    fn packet_loss_lowers_r_by_ie_eff() {
        // G.711 with PLC at 2% random loss: Ie,eff = 95 * 2 / (2 + 25.1).
        let p = EModelParams { bpl: 25.1, ppl: 2.0, ..Default::default() };
        let expected = 95.0 * 2.0 / 27.1;
        assert!((p.terms().ie_eff - expected).abs() < 1e-9);
        assert!((EModelParams::default().r_factor() - p.r_factor() - expected).abs() < 1e-9);
        // Bursty loss hurts more than random loss at the same rate.
        let bursty = EModelParams { burst_r: 2.0, ..p };
        assert!(bursty.r_factor() < p.r_factor());
    }

    #[test]
    fn estimates_for_the_three_codecs() {
        let clean = |codec| estimate_quality(&QualityInputs { codec, one_way_delay_ms: 0.0, loss_percent: 0.0, burst_r: 1.0 });
        let g711 = clean(CodecImpairment::G711_PLC);
        assert!((g711.r - 93.2).abs() < 0.05 && (g711.mos_cq - 4.41).abs() < 0.01);
        let g722 = clean(CodecImpairment::G722_PLC);
        // 129 - Id (0.15) - Ie,WB (13), then / 1.29.
        assert!((g722.r - 115.85).abs() < 0.05, "{g722:?}");
        assert!((g722.r_narrowband - 115.85 / 1.29).abs() < 0.05);
        assert!(g722.mos_cq < g711.mos_cq + 0.1);
        let lossy = estimate_quality(&QualityInputs {
            codec: CodecImpairment::G711_NO_PLC,
            one_way_delay_ms: 300.0,
            loss_percent: 5.0,
            burst_r: 1.5,
        });
        assert!(lossy.mos_cq < lossy.mos_lq && lossy.mos_lq < g711.mos_lq);
        assert!(lossy.mos_cq >= 1.0);
    }

    #[test]
    fn nonsense_inputs_stay_in_range() {
        for (d, l, b) in [(f64::NAN, 0.0, 1.0), (1e9, 100.0, 0.0), (-5.0, -3.0, f64::INFINITY), (0.0, 1e9, 1e-12)] {
            for codec in [CodecImpairment::G711_PLC, CodecImpairment::G722_PLC] {
                let q = estimate_quality(&QualityInputs { codec, one_way_delay_ms: d, loss_percent: l, burst_r: b });
                assert!((1.0..=4.5).contains(&q.mos_cq) && (1.0..=4.5).contains(&q.mos_lq), "{q:?}");
                assert!(q.r_narrowband.is_finite());
            }
        }
    }
}
