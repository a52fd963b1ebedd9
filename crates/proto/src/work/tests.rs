use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn spec(text: &str) -> WorkSpec {
    WorkSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Distinct synthetic payloads: 16 bytes from a counter, like the load generator's
/// self-identifying payloads (whose first bytes differ per connection and sequence).
fn payload(i: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    bytes[8..].copy_from_slice(&(i ^ 0x5555).to_be_bytes());
    bytes
}

#[test]
fn the_examples_parse_to_what_they_say() {
    let fixed = spec("cpu:20us");
    assert_eq!(fixed.items().len(), 1);
    let item = fixed.items()[0];
    assert_eq!(item.kind(), WorkKind::Cpu);
    assert_eq!(item.distribution(), Distribution::Fixed);
    assert_eq!(item.mean(), Duration::from_micros(20));
    assert_eq!(item.basis_points(), 10_000);

    assert_eq!(spec("block:1ms").items()[0].kind(), WorkKind::Block);
    assert_eq!(
        spec("cpu:exp:50us").items()[0].distribution(),
        Distribution::Exp
    );

    let tail = spec("cpu:10us,1%block:5ms");
    assert_eq!(tail.items()[0].basis_points(), 9_900);
    assert_eq!(tail.items()[1].basis_points(), 100);
    assert_eq!(tail.items()[1].mean(), Duration::from_millis(5));
    assert_eq!(tail.to_string(), "cpu:10us,1%block:5ms");
}

#[test]
fn units_decimals_and_whitespace() {
    for (text, nanos) in [
        ("cpu:7ns", 7),
        ("cpu:20us", 20_000),
        ("cpu:20µs", 20_000),
        ("cpu:1.5ms", 1_500_000),
        ("cpu:0.25s", 250_000_000),
        ("cpu:10s", 10_000_000_000),
        ("cpu:1.000000001s", 1_000_000_001),
        (" cpu:3us ", 3_000),
    ] {
        assert_eq!(spec(text).items()[0].mean().as_nanos(), nanos, "{text}");
    }
    let mixed = spec("0.5%block:1ms, 99.5%cpu:1us");
    assert_eq!(mixed.items()[0].basis_points(), 50);
    assert_eq!(mixed.to_string(), "0.5%block:1ms,99.5%cpu:1us");
    assert_eq!(spec("cpu:1.5ms").to_string(), "cpu:1500us");
    assert_eq!(
        spec("12.34%cpu:1us,cpu:2us").to_string(),
        "12.34%cpu:1us,cpu:2us"
    );
}

#[test]
fn every_bad_spec_gets_its_own_one_line_error() {
    use WorkSpecError as E;
    type Case = (&'static str, fn(&WorkSpecError) -> bool, &'static str);
    let cases: &[Case] = &[
        ("", |e| *e == E::Empty, "empty work spec"),
        ("  ", |e| *e == E::Empty, "empty work spec"),
        (
            "cpu:",
            |e| matches!(e, E::MissingDuration { .. }),
            "no duration in \"cpu:\"",
        ),
        (
            "cpu",
            |e| matches!(e, E::MissingDuration { .. }),
            "expected KIND:DURATION",
        ),
        (
            "cpu:-1us",
            |e| matches!(e, E::BadNumber { .. }),
            "\"-1us\" in \"cpu:-1us\" is not a positive number",
        ),
        (
            "cpu:1e3us",
            |e| matches!(e, E::UnknownUnit { .. }),
            "unknown unit \"e3us\"",
        ),
        (
            "cpu:.5us",
            |e| matches!(e, E::BadNumber { .. }),
            "not a positive number",
        ),
        (
            "cpu:10x",
            |e| matches!(e, E::UnknownUnit { .. }),
            "unknown unit \"x\" in \"cpu:10x\": expected ns, us, µs, ms or s",
        ),
        (
            "cpu:10",
            |e| matches!(e, E::UnknownUnit { .. }),
            "unknown unit \"\"",
        ),
        (
            "cpu:0us",
            |e| matches!(e, E::Zero { .. }),
            "duration in \"cpu:0us\" must be > 0",
        ),
        (
            "cpu:0.5ns",
            |e| matches!(e, E::SubNanosecond { .. }),
            "finer than 1 ns",
        ),
        (
            "block:2h",
            |e| matches!(e, E::TooLong { .. }),
            "duration in \"block:2h\" is above the maximum of 10s per message",
        ),
        (
            "block:10.000000001s",
            |e| matches!(e, E::TooLong { .. }),
            "above the maximum",
        ),
        (
            "block:99999999999999999999999s",
            |e| matches!(e, E::TooLong { .. }),
            "above the maximum",
        ),
        (
            "disk:1ms",
            |e| matches!(e, E::UnknownKind { .. }),
            "unknown work kind \"disk\" in \"disk:1ms\": expected cpu or block",
        ),
        (
            "cpu:gauss:1ms",
            |e| matches!(e, E::UnknownDistribution { .. }),
            "unknown distribution \"gauss\"",
        ),
        (
            "60%cpu:1us,50%block:1ms",
            |e| matches!(e, E::SharesOver100 { .. }),
            "add up to 110%, more than 100%",
        ),
        (
            "60%cpu:1us,40.5%block:1ms,cpu:3us",
            |e| matches!(e, E::SharesOver100 { .. }),
            "add up to 100.5%",
        ),
        (
            "60%cpu:1us,30%block:1ms",
            |e| matches!(e, E::SharesUnder100 { .. }),
            "add up to 90%: when every item has a share",
        ),
        (
            "cpu:1us,block:1ms",
            |e| matches!(e, E::TwoWithoutShare { .. }),
            "\"cpu:1us\" and \"block:1ms\" both have no share",
        ),
        (
            "100%cpu:1us,block:1ms",
            |e| matches!(e, E::NoRest { .. }),
            "leaving nothing for \"block:1ms\"",
        ),
        (
            "0%cpu:1us,cpu:2us",
            |e| matches!(e, E::BadShare { .. }),
            "share \"0\"",
        ),
        (
            "0.001%cpu:1us,cpu:2us",
            |e| matches!(e, E::BadShare { .. }),
            "at most two decimals",
        ),
        (
            "101%cpu:1us",
            |e| matches!(e, E::BadShare { .. }),
            "at most 100",
        ),
        (
            "x%cpu:1us",
            |e| matches!(e, E::BadShare { .. }),
            "share \"x\"",
        ),
        (
            "cpu:1us,,block:1ms",
            |e| matches!(e, E::EmptyItem { .. }),
            "empty item",
        ),
        (
            "cpu:1us,",
            |e| matches!(e, E::EmptyItem { .. }),
            "separated by single commas",
        ),
    ];
    for (text, is_expected, says) in cases {
        let err = WorkSpec::parse(text).expect_err(text);
        let line = err.to_string();
        assert!(is_expected(&err), "{text:?} gave {err:?}");
        assert!(
            line.contains(says),
            "{text:?}: {line:?} does not say {says:?}"
        );
        assert!(
            !line.contains('\n'),
            "{text:?}: more than one line: {line:?}"
        );
    }
}

#[test]
fn choice_is_a_function_of_length_and_first_64_bytes() {
    let tail = spec("50%cpu:1us,block:1ms");
    let mut big = vec![7u8; 65_536];
    let before = tail.choose(&big);
    big[64..].fill(9);
    assert_eq!(tail.choose(&big), before, "bytes past 64 do not count");
    let differs = (0..64).any(|i| {
        big[0] = i;
        tail.choose(&big).item != before.item
    });
    assert!(differs, "the first bytes count");
    let lengths: std::collections::HashSet<usize> =
        (0..64).map(|n| tail.choose(&vec![0u8; n]).item).collect();
    assert_eq!(lengths.len(), 2, "the length counts");
    assert_eq!(tail.choose(&[]), tail.choose(&[]));
}

#[test]
fn one_percent_long_tail_is_one_percent_and_slow() {
    let tail = spec("cpu:10us,1%block:5ms");
    let n = 100_000;
    let mut slow = 0;
    for i in 0..n {
        let chosen = tail.choose(&payload(i));
        assert_eq!(chosen.slow, chosen.item == 1);
        if chosen.slow {
            assert_eq!(chosen.kind, WorkKind::Block);
            assert_eq!(chosen.duration, Duration::from_millis(5));
            slow += 1;
        } else {
            assert_eq!(chosen.duration, Duration::from_micros(10));
        }
    }
    let share = slow as f64 / n as f64;
    assert!((0.007..=0.013).contains(&share), "slow share {share}");
    assert!((tail.slow_fraction() - 0.01).abs() < 1e-12);
}

#[test]
fn small_shares_are_honoured_to_the_basis_point() {
    let spec = spec("0.05%block:1ms,20%cpu:5us,cpu:1us");
    let n = 200_000;
    let mut counts = [0u32; 3];
    for i in 0..n {
        counts[spec.choose(&payload(i)).item] += 1;
    }
    let share = |c: u32| f64::from(c) / n as f64;
    // 0.05% of 200k is 100 messages: ±40% covers four standard deviations.
    assert!((0.0003..=0.0007).contains(&share(counts[0])), "{counts:?}");
    assert!((0.19..=0.21).contains(&share(counts[1])), "{counts:?}");
}

#[test]
fn exponential_draws_have_the_mean_and_no_slow_messages_alone() {
    let spec = spec("cpu:exp:50us");
    let n = 100_000;
    let mut total = Duration::ZERO;
    let mut longest = Duration::ZERO;
    for i in 0..n {
        let chosen = spec.choose(&payload(i));
        assert!(!chosen.slow, "a one-item spec has no slow messages");
        total += chosen.duration;
        longest = longest.max(chosen.duration);
    }
    let mean = total.as_nanos() as f64 / n as f64;
    assert!((mean / 50_000.0 - 1.0).abs() < 0.03, "mean {mean} ns");
    // The largest of 100k exponential draws is near mean * ln(100k) ≈ 11.5 means.
    assert!(longest > Duration::from_micros(400), "longest {longest:?}");
}

#[test]
fn exponential_draws_are_capped_at_the_maximum() {
    let spec = spec("block:exp:10s");
    assert!((0..10_000).all(|i| spec.choose(&payload(i)).duration <= MAX_WORK));
    assert!((0..10_000).any(|i| spec.choose(&payload(i)).duration == MAX_WORK));
}

#[test]
fn means_are_weighted_by_share() {
    let tail = spec("cpu:10us,1%block:5ms");
    assert_eq!(tail.mean_cpu_time(), Duration::from_nanos(9_900));
    assert_eq!(tail.mean_block_time(), Duration::from_micros(50));
    assert_eq!(tail.mean_service_time(), Duration::from_nanos(59_900));
    assert!(tail.has_cpu());
    assert!(!spec("block:1ms").has_cpu());
    assert_eq!(spec("block:1ms").mean_cpu_time(), Duration::ZERO);
}

#[test]
fn the_hash_is_the_documented_one() {
    // FNV-1a over the 8 length bytes of an empty payload, then the SplitMix64
    // finaliser: written out here so that a change to either is seen.
    let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..8 {
        fnv = fnv.wrapping_mul(0x100_0000_01b3);
    }
    assert_eq!(payload_hash(&[]), mix(fnv));
    let split = spec("50%cpu:1us,block:2us");
    let expected = usize::from(mix(fnv) % 10_000 >= 5_000);
    assert_eq!(split.choose(&[]).item, expected);
}

fn item_text() -> impl Strategy<Value = (bool, bool, u64, &'static str)> {
    (
        any::<bool>(),
        any::<bool>(),
        1u64..=10_000,
        prop::sample::select(vec!["ns", "us", "ms"]),
    )
        .prop_map(|(cpu, exp, n, unit)| (cpu, exp, n, unit))
}

proptest! {
    #[test]
    fn display_parses_back_to_the_same_spec(
        items in prop::collection::vec(item_text(), 1..5),
        weights in prop::collection::vec(1u32..2000, 5),
        rest in any::<prop::sample::Index>(),
        with_rest in any::<bool>(),
    ) {
        // Shares in basis points adding up to 100% (less the rest, when one item has none).
        let rest = with_rest.then(|| rest.index(items.len()));
        let explicit = items.len() - usize::from(rest.is_some());
        let budget = if rest.is_some() { 9_999 } else { 10_000 };
        let sum: u32 = weights[..explicit].iter().sum();
        let mut shares: Vec<u32> = weights[..explicit]
            .iter()
            .map(|w| (w * budget / sum.max(1)).max(1))
            .collect();
        if rest.is_none() {
            let given: u32 = shares.iter().sum();
            shares[0] = shares[0] + 10_000 - given;
        }
        let mut next_share = shares.into_iter();
        let text: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, (cpu, exp, n, unit))| {
                let share = if Some(i) == rest {
                    String::new()
                } else {
                    format!("{}%", Percent(next_share.next().unwrap_or(1)))
                };
                let kind = if *cpu { "cpu" } else { "block" };
                let exp = if *exp { "exp:" } else { "" };
                format!("{share}{kind}:{exp}{n}{unit}")
            })
            .collect();
        let text = text.join(",");
        let parsed = WorkSpec::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let shown = parsed.to_string();
        prop_assert_eq!(WorkSpec::parse(&shown), Ok(parsed.clone()), "{} -> {}", text, shown);
        prop_assert_eq!(parsed.items().iter().map(|i| i.basis_points()).sum::<u32>(), 10_000);
        let chosen = parsed.choose(text.as_bytes());
        prop_assert!(chosen.item < parsed.items().len());
        prop_assert_eq!(chosen, parsed.choose(text.as_bytes()));
    }
}
