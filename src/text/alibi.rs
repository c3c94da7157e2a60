//! ALiBi slopes.

/// Returns the ALiBi slope of every head, head 0 first.
///
/// For a power-of-two head count n the slopes are `2^(−8(h+1)/n)`. For other
/// counts, the slopes of the largest power of two below n come first, then
/// every other slope of twice that power, as in the ALiBi reference code
/// (`get_slopes` of ofirpress/attention_with_linear_biases, also used by
/// flash-attn and JinaBERT). Computed in f64 and rounded to f32, as PyTorch
/// does when it turns the Python list into a float32 tensor.
pub fn alibi_slopes(heads: usize) -> Vec<f32> {
    slopes_f64(heads).into_iter().map(|slope| slope as f32).collect()
}

fn slopes_f64(heads: usize) -> Vec<f64> {
    if heads == 0 {
        return Vec::new();
    }
    if heads.is_power_of_two() {
        let start = 2f64.powf(-8.0 / heads as f64);
        return (0..heads).map(|i| start * start.powf(i as f64)).collect();
    }
    let closest = 1usize << heads.ilog2();
    let mut slopes = slopes_f64(closest);
    slopes.extend(slopes_f64(2 * closest).into_iter().step_by(2).take(heads - closest));
    slopes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: &[f32], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (h, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            assert!((a as f64 - e).abs() <= 1e-7 * e, "head {h}: {a} vs {e}");
        }
    }

    #[test]
    fn slopes_for_8_heads() {
        let expected: Vec<f64> = (1..=8).map(|i| 2f64.powi(-i)).collect();
        assert_close(&alibi_slopes(8), &expected);
    }

    #[test]
    fn slopes_for_16_heads() {
        let expected: Vec<f64> = (1..=16).map(|i| 2f64.powf(-0.5 * i as f64)).collect();
        assert_close(&alibi_slopes(16), &expected);
    }

    #[test]
    fn slopes_for_12_heads() {
        // The 8 power-of-two slopes, then slopes 1, 3, 5, 7 (0-based 0, 2, 4, 6) of the 16-head set.
        let mut expected: Vec<f64> = (1..=8).map(|i| 2f64.powi(-i)).collect();
        expected.extend([-0.5, -1.5, -2.5, -3.5].map(|e: f64| 2f64.powf(e)));
        assert_close(&alibi_slopes(12), &expected);
    }

    #[test]
    fn slopes_for_6_heads() {
        // The 4 power-of-two slopes 2^-2, 2^-4, 2^-6, 2^-8, then 2^-1 and 2^-3 of the 8-head set.
        let expected = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        assert_close(&alibi_slopes(6), &expected);
    }

    #[test]
    fn slopes_for_one_head() {
        assert_close(&alibi_slopes(1), &[2f64.powi(-8)]);
    }
}
