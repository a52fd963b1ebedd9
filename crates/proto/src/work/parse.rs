//! The `--work` grammar (see the parent module), with one error per way a spec can be
//! wrong, each naming the bad part and what was expected.

use std::time::Duration;

use thiserror::Error;

use super::{Distribution, Percent, WorkItem, WorkKind, WorkSpec, MAX_WORK, WHOLE};

/// Why a `--work` spec was refused. Its `Display` is one line naming the bad part and
/// what is expected, for a command line's error message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WorkSpecError {
    /// Nothing but whitespace.
    #[error("empty work spec: expected items such as cpu:20us, block:1ms or cpu:10us,1%block:5ms")]
    Empty,
    /// Two commas in a row, or a comma at either end.
    #[error("empty item in work spec {spec:?}: items are separated by single commas")]
    EmptyItem {
        /// The whole spec.
        spec: String,
    },
    /// A kind other than `cpu` or `block`.
    #[error("unknown work kind {kind:?} in {item:?}: expected cpu or block (e.g. cpu:20us)")]
    UnknownKind {
        /// The item.
        item: String,
        /// What stood where the kind goes.
        kind: String,
    },
    /// `cpu` or `cpu:` with nothing after it.
    #[error("no duration in {item:?}: expected KIND:DURATION, e.g. cpu:20us")]
    MissingDuration {
        /// The item.
        item: String,
    },
    /// Something other than `exp:` between the kind and the duration.
    #[error(
        "unknown distribution {distribution:?} in {item:?}: expected exp (e.g. cpu:exp:50us), \
         or nothing for a fixed duration"
    )]
    UnknownDistribution {
        /// The item.
        item: String,
        /// What stood where `exp` goes.
        distribution: String,
    },
    /// A duration that does not start with a plain positive decimal number.
    #[error(
        "duration {duration:?} in {item:?} is not a positive number followed by a unit \
         (e.g. 20us, 1.5ms)"
    )]
    BadNumber {
        /// The item.
        item: String,
        /// The duration as written.
        duration: String,
    },
    /// A unit other than ns, us, µs, ms or s (or none).
    #[error("unknown unit {unit:?} in {item:?}: expected ns, us, µs, ms or s (e.g. 20us)")]
    UnknownUnit {
        /// The item.
        item: String,
        /// The unit as written (empty when there was none).
        unit: String,
    },
    /// A duration with a fraction of a nanosecond.
    #[error("duration in {item:?} is finer than 1 ns: give it in whole nanoseconds")]
    SubNanosecond {
        /// The item.
        item: String,
    },
    /// A duration of zero.
    #[error("duration in {item:?} must be > 0")]
    Zero {
        /// The item.
        item: String,
    },
    /// A duration above [`MAX_WORK`].
    #[error("duration in {item:?} is above the maximum of {max:?} per message")]
    TooLong {
        /// The item.
        item: String,
        /// The maximum.
        max: Duration,
    },
    /// A share that is not a percentage above 0 and at most 100 with two decimals.
    #[error(
        "share {share:?} in {item:?}: expected a percentage above 0 and at most 100, with at \
         most two decimals (e.g. 1%, 0.5%)"
    )]
    BadShare {
        /// The item.
        item: String,
        /// The share as written, without its `%`.
        share: String,
    },
    /// The shares given add up to more than 100%.
    #[error("shares in {spec:?} add up to {total}%, more than 100%")]
    SharesOver100 {
        /// The whole spec.
        spec: String,
        /// Their sum, as a percentage.
        total: String,
    },
    /// Every item has a share, and they do not add up to 100%.
    #[error(
        "shares in {spec:?} add up to {total}%: when every item has a share they must add up \
         to 100% (or leave one item without a share to take the rest)"
    )]
    SharesUnder100 {
        /// The whole spec.
        spec: String,
        /// Their sum, as a percentage.
        total: String,
    },
    /// The shares given add up to 100% and another item has none.
    #[error("shares in {spec:?} already add up to 100%, leaving nothing for {item:?}")]
    NoRest {
        /// The whole spec.
        spec: String,
        /// The item without a share.
        item: String,
    },
    /// Two items without a share: which one takes the rest?
    #[error("{first:?} and {second:?} both have no share: at most one item may take the rest")]
    TwoWithoutShare {
        /// The first item without a share.
        first: String,
        /// The second.
        second: String,
    },
}

/// Parses a whole spec.
pub(super) fn spec(text: &str) -> Result<WorkSpec, WorkSpecError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(WorkSpecError::Empty);
    }
    let mut items = Vec::new();
    let mut rest_item: Option<(usize, &str)> = None;
    let mut given = 0u32;
    for raw in text.split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(WorkSpecError::EmptyItem { spec: text.into() });
        }
        let item = item(raw)?;
        if item.explicit {
            given += item.basis_points;
        } else if let Some((_, first)) = rest_item {
            return Err(WorkSpecError::TwoWithoutShare {
                first: first.into(),
                second: raw.into(),
            });
        } else {
            rest_item = Some((items.len(), raw));
        }
        items.push(item);
    }
    let total = || Percent(given).to_string();
    if given > WHOLE {
        return Err(WorkSpecError::SharesOver100 {
            spec: text.into(),
            total: total(),
        });
    }
    match rest_item {
        Some((_, raw)) if given == WHOLE => Err(WorkSpecError::NoRest {
            spec: text.into(),
            item: raw.into(),
        }),
        Some((index, _)) => {
            items[index].basis_points = WHOLE - given;
            Ok(WorkSpec { items })
        }
        None if given != WHOLE => Err(WorkSpecError::SharesUnder100 {
            spec: text.into(),
            total: total(),
        }),
        None => Ok(WorkSpec { items }),
    }
}

/// `[P%]KIND:[exp:]DUR`; a share-less item gets its basis points later (the rest).
fn item(raw: &str) -> Result<WorkItem, WorkSpecError> {
    let (share, body) = match raw.split_once('%') {
        Some((share, body)) => (Some(share), body),
        None => (None, raw),
    };
    let basis_points = share.map(|s| parse_share(raw, s)).transpose()?;
    let (kind, rest) = body.split_once(':').unwrap_or((body, ""));
    let kind = match kind {
        "cpu" => WorkKind::Cpu,
        "block" => WorkKind::Block,
        other => {
            return Err(WorkSpecError::UnknownKind {
                item: raw.into(),
                kind: other.into(),
            })
        }
    };
    let (distribution, duration) = match rest.split_once(':') {
        Some(("exp", duration)) => (Distribution::Exp, duration),
        Some((other, _)) => {
            return Err(WorkSpecError::UnknownDistribution {
                item: raw.into(),
                distribution: other.into(),
            })
        }
        None => (Distribution::Fixed, rest),
    };
    Ok(WorkItem {
        kind,
        distribution,
        mean: parse_duration(raw, duration)?,
        basis_points: basis_points.unwrap_or(0),
        explicit: share.is_some(),
    })
}

/// A percentage with at most two decimals, in basis points: `1` → 100, `0.25` → 25.
fn parse_share(item: &str, share: &str) -> Result<u32, WorkSpecError> {
    let bad = || WorkSpecError::BadShare {
        item: item.into(),
        share: share.into(),
    };
    let (whole, fraction) = decimal(share).ok_or_else(bad)?;
    if fraction.len() > 2 {
        return Err(bad());
    }
    let hundredths = format!("{fraction:0<2}");
    let basis_points = whole
        .parse::<u32>()
        .ok()
        .and_then(|w| w.checked_mul(100))
        .and_then(|w| w.checked_add(hundredths.parse::<u32>().ok()?))
        .ok_or_else(bad)?;
    if basis_points == 0 || basis_points > WHOLE {
        return Err(bad());
    }
    Ok(basis_points)
}

/// A decimal number then a unit, in whole nanoseconds, above 0 and at most
/// [`MAX_WORK`].
fn parse_duration(item: &str, text: &str) -> Result<Duration, WorkSpecError> {
    if text.is_empty() {
        return Err(WorkSpecError::MissingDuration { item: item.into() });
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let (whole, fraction) = decimal(number).ok_or_else(|| WorkSpecError::BadNumber {
        item: item.into(),
        duration: text.into(),
    })?;
    let per_unit: u128 = match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        // Understood so that `block:2h` is refused as too long, not as a typo.
        "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => {
            return Err(WorkSpecError::UnknownUnit {
                item: item.into(),
                unit: other.into(),
            })
        }
    };
    let too_long = || WorkSpecError::TooLong {
        item: item.into(),
        max: MAX_WORK,
    };
    // More digits than any duration up to 10 s needs: refused before they overflow.
    if whole.trim_start_matches('0').len() > 12 {
        return Err(too_long());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 9 {
        return Err(WorkSpecError::SubNanosecond { item: item.into() });
    }
    let scale = 10u128.pow(fraction.len() as u32);
    let whole: u128 = whole.parse().unwrap_or(0);
    let fraction: u128 = fraction.parse().unwrap_or(0);
    let nanos = whole * per_unit + fraction * per_unit / scale;
    if !(fraction * per_unit).is_multiple_of(scale) {
        return Err(WorkSpecError::SubNanosecond { item: item.into() });
    }
    if nanos == 0 {
        return Err(WorkSpecError::Zero { item: item.into() });
    }
    if nanos > MAX_WORK.as_nanos() {
        return Err(too_long());
    }
    // At most 10 s in nanoseconds: fits a u64.
    Ok(Duration::from_nanos(nanos as u64))
}

/// `digits[.digits]` split into its whole and fractional digits; `None` for anything
/// else (a sign, an exponent, a lone dot, no digits before the dot).
fn decimal(text: &str) -> Option<(&str, &str)> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let dot_without_digits = text.contains('.') && fraction.is_empty();
    (!whole.is_empty() && digits(whole) && digits(fraction) && !dot_without_digits)
        .then_some((whole, fraction))
}
