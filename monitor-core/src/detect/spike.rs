//! Traffic spikes: the host's pps and bytes/s against a learned baseline, an
//! exponentially weighted mean and deviation of each. A spike is a rate above
//! `mean + k_sigma * deviation` (and above an absolute floor) for `sustain`, once the
//! baseline has learned for `warmup`.
//!
//! The baseline does not learn from a sample above its band, nor while a flood is
//! being reported: an attack must not teach it that the attack is normal.

use crate::{
    config::SpikeConfig,
    model::alert::{AlertKind, AlertSource, Finding, Target, Unit},
};

/// Exponentially weighted mean and variance of one rate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Baseline {
    pub mean: f64,
    pub variance: f64,
    /// Seconds of traffic learned.
    pub learned_secs: f64,
}

impl Baseline {
    /// `alpha` is the weight of one second; an interval of `seconds` weighs
    /// `1 - (1 - alpha)^seconds`, so the pace does not depend on the interval.
    pub fn learn(&mut self, value: f64, seconds: f64, alpha: f64) {
        if self.learned_secs == 0.0 {
            self.mean = value;
            self.variance = 0.0;
        } else {
            let weight = 1.0 - (1.0 - alpha).powf(seconds);
            let diff = value - self.mean;
            self.mean += weight * diff;
            self.variance = (1.0 - weight) * (self.variance + weight * diff * diff);
        }
        self.learned_secs += seconds;
    }

    pub fn deviation(&self) -> f64 {
        self.variance.sqrt()
    }

    /// The rate above which a sample is a spike.
    pub fn band(&self, k_sigma: f64, floor: f64) -> f64 {
        (self.mean + k_sigma * self.deviation()).max(floor)
    }
}

#[derive(Clone, Debug, Default)]
pub struct SpikeDetector {
    pub pps: Baseline,
    pub bytes_per_sec: Baseline,
    /// How long the rates have been above the band without a break.
    above_secs: f64,
}

impl SpikeDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one interval's host rates. `flood_active` pauses learning.
    pub fn observe(
        &mut self,
        pps: f64,
        bytes_per_sec: f64,
        seconds: f64,
        flood_active: bool,
        config: &SpikeConfig,
        target: &Target,
    ) -> Option<Finding> {
        if seconds <= 0.0 {
            return None;
        }
        let k = config.k_sigma.get();
        let warm = self.pps.learned_secs >= config.warmup.as_secs_f64();
        let pps_band = self.pps.band(k, config.min_pps.get() as f64);
        let bps_band = self
            .bytes_per_sec
            .band(k, config.min_bytes_per_sec.get() as f64);
        let pps_over = warm && pps > pps_band;
        let bps_over = warm && bytes_per_sec > bps_band;

        if pps_over || bps_over {
            self.above_secs += seconds;
        } else {
            self.above_secs = 0.0;
            if !flood_active {
                let alpha = config.alpha.get();
                self.pps.learn(pps, seconds, alpha);
                self.bytes_per_sec.learn(bytes_per_sec, seconds, alpha);
            }
        }
        // The interval that crosses `sustain` counts, hence the small tolerance.
        if !(pps_over || bps_over) || self.above_secs + 1e-9 < config.sustain.as_secs_f64() {
            return None;
        }
        // Report the rate that is further above its band.
        let (value, band, baseline, unit) =
            if pps_over && (!bps_over || pps / pps_band >= bytes_per_sec / bps_band) {
                (pps, pps_band, self.pps, Unit::Pps)
            } else {
                (
                    bytes_per_sec,
                    bps_band,
                    self.bytes_per_sec,
                    Unit::BytesPerSec,
                )
            };
        let message = format!(
            "{} against a baseline of {} ± {} (band {}) for {:.1}s",
            unit.format(value),
            unit.format(baseline.mean),
            unit.format(baseline.deviation()),
            unit.format(band),
            self.above_secs
        );
        Some(Finding {
            kind: AlertKind::Spike,
            source: AlertSource::Many,
            target: target.clone(),
            value: (value * 10.0).round() / 10.0,
            threshold: (band * 10.0).round() / 10.0,
            unit,
            message,
            flow: None,
            connection: None,
        })
    }
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "the values asserted are exact in binary (whole counts over exact intervals); a tolerance would loosen the tests"
)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::detect::fixtures::eth0;

    fn config() -> SpikeConfig {
        SpikeConfig::default()
    }

    /// Normal traffic: around 2,000 pps and 2 MB/s with some wobble.
    fn normal(i: usize) -> (f64, f64) {
        let wobble = [0.0, 150.0, -120.0, 80.0, -60.0][i % 5];
        (2_000.0 + wobble, 2_000_000.0 + wobble * 1_000.0)
    }

    fn warmed_up(seconds: f64) -> SpikeDetector {
        let mut d = SpikeDetector::new();
        let intervals = (120.0 / seconds) as usize;
        for i in 0..intervals {
            let (pps, bps) = normal(i);
            assert!(
                d.observe(pps, bps, seconds, false, &config(), &eth0())
                    .is_none()
            );
        }
        d
    }

    #[test]
    fn warm_up_then_a_sustained_spike_is_reported() {
        let mut d = warmed_up(1.0);
        assert!((d.pps.mean - 2_000.0).abs() < 100.0, "{:?}", d.pps);
        // 30,000 pps is a spike; reported once it has lasted `sustain` (2 s).
        assert!(
            d.observe(30_000.0, 3_000_000.0, 1.0, false, &config(), &eth0())
                .is_none()
        );
        let f = d
            .observe(30_000.0, 3_000_000.0, 1.0, false, &config(), &eth0())
            .unwrap();
        assert_eq!(
            (f.kind, f.source, f.unit),
            (AlertKind::Spike, AlertSource::Many, Unit::Pps)
        );
        assert_eq!(f.value, 30_000.0);
        assert_eq!(
            f.threshold, 10_000.0,
            "the floor is above mean + 4 sigma here"
        );
    }

    #[test]
    fn nothing_is_reported_during_warm_up() {
        let mut d = SpikeDetector::new();
        for _ in 0..59 {
            assert!(
                d.observe(100_000.0, 1e9, 1.0, false, &config(), &eth0())
                    .is_none()
            );
        }
    }

    #[test]
    fn the_baseline_does_not_learn_during_an_attack() {
        let mut d = warmed_up(0.25);
        let before = d.pps;
        // Ten minutes of a spike: reported throughout, never learned.
        for i in 0..2_400 {
            let f = d.observe(40_000.0, 3e6, 0.25, false, &config(), &eth0());
            assert_eq!(f.is_some(), i >= 7, "interval {i}");
        }
        assert_eq!(d.pps, before);
        // Nor does it learn from traffic under a flood alert, spike or not.
        d.observe(8_000.0, 3e6, 0.25, true, &config(), &eth0());
        assert_eq!(d.pps, before);
        // Back to normal: learning resumes.
        let (pps, bps) = normal(0);
        assert!(
            d.observe(pps, bps, 0.25, false, &config(), &eth0())
                .is_none()
        );
        assert!(d.pps.learned_secs > before.learned_secs);
    }

    #[test]
    fn a_short_burst_is_not_a_spike() {
        // A 5 MB download filling the link for a second: over the band, under `sustain`.
        let mut d = warmed_up(0.25);
        for _ in 0..4 {
            assert!(
                d.observe(14_000.0, 20e6, 0.25, false, &config(), &eth0())
                    .is_none()
            );
        }
        let (pps, bps) = normal(1);
        assert!(
            d.observe(pps, bps, 0.25, false, &config(), &eth0())
                .is_none()
        );
        for _ in 0..4 {
            assert!(
                d.observe(14_000.0, 20e6, 0.25, false, &config(), &eth0())
                    .is_none()
            );
        }
    }

    #[test]
    fn bandwidth_spike_and_a_busier_baseline() {
        let mut cfg = config();
        cfg.sustain = Duration::ZERO;
        let mut d = SpikeDetector::new();
        // A busy host: 60,000 pps, 500 Mbit/s, steady.
        for i in 0..120 {
            let (pps, bps) = normal(i);
            assert!(
                d.observe(pps * 30.0, bps * 30.0, 1.0, false, &cfg, &eth0())
                    .is_none()
            );
        }
        // Within its normal wobble, nothing.
        assert!(
            d.observe(64_000.0, 64e6, 1.0, false, &cfg, &eth0())
                .is_none()
        );
        // Double the bandwidth at the same packet rate.
        let f = d
            .observe(60_000.0, 130e6, 1.0, false, &cfg, &eth0())
            .unwrap();
        assert_eq!(f.unit, Unit::BytesPerSec);
        assert!(
            f.threshold > 62_500_000.0 && f.threshold < 130e6,
            "{}",
            f.threshold
        );
    }

    #[test]
    fn baseline_weight_does_not_depend_on_the_interval() {
        let (mut fast, mut slow) = (Baseline::default(), Baseline::default());
        fast.learn(0.0, 0.25, 0.02);
        slow.learn(0.0, 1.0, 0.02);
        for _ in 0..40 {
            fast.learn(100.0, 0.25, 0.02);
        }
        for _ in 0..10 {
            slow.learn(100.0, 1.0, 0.02);
        }
        assert!(
            (fast.mean - slow.mean).abs() < 1e-9,
            "{} {}",
            fast.mean,
            slow.mean
        );
    }
}
