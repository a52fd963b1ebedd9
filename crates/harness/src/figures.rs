//! How a figure reads in the tables and on chart axes: three significant figures, so a
//! column of very different magnitudes stays narrow and comparable at a glance.

/// A number in three significant figures with a k/M suffix.
pub(crate) fn short(x: f64) -> String {
    let (v, suffix) = if x.abs() >= 1e6 {
        (x / 1e6, "M")
    } else if x.abs() >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.0), "0.00");
        assert_eq!(short(12.345), "12.3");
        assert_eq!(short(12_345.0), "12.3k");
        assert_eq!(short(123_456.0), "123k");
        assert_eq!(short(1_234_567.0), "1.23M");
    }
}
