//! Small statistics the estimator needs: least squares with a confidence interval on the
//! slope, a Theil–Sen slope, quantiles; Student's t and F quantiles from `statrs`.
//!
//! Every function takes any input (empty, constant, NaN-free or not) and answers `None` or a
//! finite number, never a panic.

use statrs::distribution::{ContinuousCDF, FisherSnedecor, StudentsT};

/// A two-sided confidence level clamped to what the quantile functions take.
fn level(confidence: f64) -> f64 {
    if confidence.is_finite() {
        confidence.clamp(0.5, 0.9999)
    } else {
        0.95
    }
}

/// The `(1 + confidence) / 2` quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile(df: f64, confidence: f64) -> Option<f64> {
    if !(df.is_finite() && df > 0.0) {
        return None;
    }
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    let q = t.inverse_cdf(0.5 + level(confidence) / 2.0);
    q.is_finite().then_some(q)
}

/// The `confidence` quantile of the F distribution with `(d1, d2)` degrees of freedom.
pub fn f_quantile(d1: f64, d2: f64, confidence: f64) -> Option<f64> {
    if !(d1.is_finite() && d2.is_finite() && d1 > 0.0 && d2 > 0.0) {
        return None;
    }
    let f = FisherSnedecor::new(d1, d2).ok()?;
    let q = f.inverse_cdf(level(confidence));
    q.is_finite().then_some(q)
}

/// An ordinary least-squares line `y = intercept + slope x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// The slope.
    pub slope: f64,
    /// The intercept.
    pub intercept: f64,
    /// The slope's standard error (0 for a perfect fit).
    pub slope_se: f64,
    /// Points fitted.
    pub n: usize,
}

impl Line {
    /// The slope's confidence interval at `confidence`.
    pub fn slope_interval(&self, confidence: f64) -> Option<(f64, f64)> {
        let n = f64::from(u32::try_from(self.n).ok()?);
        let t = t_quantile(n - 2.0, confidence)?;
        let h = t * self.slope_se;
        h.is_finite().then_some((self.slope - h, self.slope + h))
    }
}

/// Fits `y = a + b x` by least squares; `None` with fewer than 3 points, or no spread in x,
/// or a non-finite result.
pub fn ols(points: &[(f64, f64)]) -> Option<Line> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = f64::from(u32::try_from(n).ok()?);
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if !(sxx.is_finite() && sxx > 0.0) {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse: f64 = points
        .iter()
        .map(|p| {
            let r = p.1 - intercept - slope * p.0;
            r * r
        })
        .sum();
    let slope_se = (sse / (nf - 2.0) / sxx).sqrt();
    (slope.is_finite() && intercept.is_finite() && slope_se.is_finite()).then_some(Line {
        slope,
        intercept,
        slope_se,
        n,
    })
}

/// The median of the pairwise slopes (Theil–Sen), robust to up to 29 % of outliers; `None`
/// with fewer than 2 points of distinct x.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    let mut slopes = Vec::new();
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let dx = b.0 - a.0;
            if dx != 0.0 {
                let s = (b.1 - a.1) / dx;
                if s.is_finite() {
                    slopes.push(s);
                }
            }
        }
    }
    median(&mut slopes)
}

/// The median (of finite values), reordering `values`.
pub fn median(values: &mut [f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// The `q` quantile (nearest rank, `q` in 0..=1) of finite values, reordering `values`.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() || !q.is_finite() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let last = values.len() - 1;
    let idx = (q.clamp(0.0, 1.0) * f64::from(u32::try_from(last).ok()?)).round();
    // idx is within 0..=last by construction.
    #[allow(clippy::cast_possible_truncation)]
    let i = (idx as usize).min(last);
    values.get(i).copied()
}

/// `n` as a float (exact below 2^53).
pub fn count(n: usize) -> f64 {
    u32::try_from(n).map_or(f64::from(u32::MAX), f64::from)
}

/// Mean and confidence half-width of a sample (Student's t); `None` with fewer than 2 values.
pub fn mean_interval(values: &[f64], confidence: f64) -> Option<(f64, f64)> {
    if values.len() < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = count(values.len());
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    let h = t_quantile(n - 1.0, confidence)? * (var / n).sqrt();
    (mean.is_finite() && h.is_finite()).then_some((mean, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_and_its_interval() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| {
                (
                    f64::from(i),
                    2.0 * f64::from(i) + 1.0 + if i % 2 == 0 { 0.1 } else { -0.1 },
                )
            })
            .collect();
        let l = ols(&pts).unwrap();
        assert!((l.slope - 2.0).abs() < 0.05);
        let (lo, hi) = l.slope_interval(0.95).unwrap();
        assert!(lo < 2.0 && hi > 2.0 && hi - lo < 0.2);
        assert!(ols(&pts[..2]).is_none());
        assert!(ols(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]).is_none());
    }

    #[test]
    fn theil_sen_ignores_outliers() {
        let mut pts: Vec<(f64, f64)> = (0..20)
            .map(|i| (f64::from(i), 0.5 * f64::from(i)))
            .collect();
        pts[3].1 = 1e9;
        pts[11].1 = -1e9;
        assert!((theil_sen(&pts).unwrap() - 0.5).abs() < 1e-9);
        assert!(theil_sen(&pts[..1]).is_none());
    }

    #[test]
    fn quantiles_and_distributions() {
        let mut v = vec![3.0, 1.0, 2.0];
        assert_eq!(median(&mut v), Some(2.0));
        assert_eq!(quantile(&mut [], 0.5), None);
        assert_eq!(quantile(&mut [f64::NAN], 0.5), None);
        assert!((t_quantile(1e6, 0.95).unwrap() - 1.96).abs() < 0.01);
        assert!(t_quantile(0.0, 0.95).is_none());
        assert!(t_quantile(5.0, f64::NAN).is_some());
        assert!((f_quantile(1.0, 1e6, 0.95).unwrap() - 3.84).abs() < 0.01);
        let (m, h) = mean_interval(&[1.0, 2.0, 3.0], 0.95).unwrap();
        assert!((m - 2.0).abs() < 1e-12 && h > 0.0);
    }
}
