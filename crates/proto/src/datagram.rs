//! The datagram half of the protocol: a stateless answer to one UDP datagram, beside the
//! stream [`Session`](crate::Session).
//!
//! UDP keeps message boundaries: one `sendto` is one datagram is one `recvfrom`, never
//! merged with the next and never split. So there is nothing to frame (no length
//! header — the datagram's own length is the message's), nothing to hold between
//! datagrams, and no connection to authenticate or time out: every datagram is answered
//! on its own, from its bytes alone, which is why this is a function of the datagram
//! and not a state machine. What the stream session's limits mean here:
//!
//! - `--max-frame` ([`FrameLimit`]) is the largest datagram answered. A larger one is
//!   cut short by the receive buffer — the kernel says so with `MSG_TRUNC` — and is
//!   dropped and counted, never echoed truncated ([`Dropped::Oversize`]).
//! - No handshake: there is no connection to carry a challenge and its answer, and
//!   whoever can send a datagram can spoof its source address anyway.
//!
//! Two services, both RFC classics over UDP: Echo (RFC 862: the same bytes back, to the
//! sender) and Daytime (RFC 867: any datagram gets the current date and time as text).
//! The clock stays outside, as for the session: the caller passes the wall-clock time.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{FrameLimit, Handler};

/// The longest UDP datagram there can be: the UDP header's 16-bit length, less its own
/// 8 bytes (IPv6; over IPv4 the IP header takes 20 more, see [`MAX_UDP_PAYLOAD_V4`]).
/// A receive buffer this long never truncates.
pub const MAX_DATAGRAM: usize = 65_527;

/// The largest payload one IPv4 UDP datagram carries: 65,535 − 20 (IP header) − 8 (UDP
/// header). `sendto` refuses more with `EMSGSIZE`.
pub const MAX_UDP_PAYLOAD_V4: usize = 65_507;

/// What a datagram server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Service {
    /// RFC 862: the datagram's bytes, back to its sender.
    #[default]
    Echo,
    /// RFC 867: the current date and time as text, whatever the datagram held.
    Daytime,
}

impl Service {
    /// Its lowercase name (`--service`, stats).
    pub fn name(self) -> &'static str {
        match self {
            Service::Echo => "echo",
            Service::Daytime => "daytime",
        }
    }
}

/// Why a datagram got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Larger than the limit (or than the receive buffer, which the kernel reported
    /// with `MSG_TRUNC`): answering the part that fit would be a wrong answer.
    Oversize,
}

/// What to do with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    /// Send these bytes to the datagram's sender, as one datagram. Echo lends the
    /// received bytes back (no copy); daytime owns its text.
    Reply(Cow<'a, [u8]>),
    /// Send nothing; count it.
    Drop(Dropped),
}

/// The rules every datagram model applies identically: the service and the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramRules {
    service: Service,
    max_len: usize,
}

impl DatagramRules {
    /// `service`, answering datagrams of at most `limit` bytes (and never more than
    /// [`MAX_DATAGRAM`], which no datagram exceeds).
    pub fn new(service: Service, limit: FrameLimit) -> DatagramRules {
        DatagramRules {
            service,
            max_len: (limit.get() as usize).min(MAX_DATAGRAM),
        }
    }

    /// The service.
    pub fn service(&self) -> Service {
        self.service
    }

    /// The largest datagram answered, which is also the receive buffer's length: a
    /// datagram that does not fit comes back with `MSG_TRUNC` set.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Why a datagram of `len` bytes (`truncated`: cut short by the kernel) gets no
    /// answer, if it gets none: what [`DatagramRules::answer`] decides before answering,
    /// for a model that answers later (its work offloaded).
    pub fn dropped(&self, len: usize, truncated: bool) -> Option<Dropped> {
        (truncated || len > self.max_len).then_some(Dropped::Oversize)
    }

    /// The answer to one datagram: `datagram` is what the receive buffer holds,
    /// `truncated` whether the kernel cut it short (`MSG_TRUNC` in the message flags);
    /// `now` is the wall-clock time, for daytime.
    ///
    /// `now` is asked only by a service that needs the time (daytime): an echo, the
    /// per-datagram hot path, reads no clock.
    pub fn answer<'a>(
        &self,
        datagram: &'a [u8],
        truncated: bool,
        now: impl FnOnce() -> SystemTime,
    ) -> Answer<'a> {
        if let Some(why) = self.dropped(datagram.len(), truncated) {
            return Answer::Drop(why);
        }
        match self.service {
            Service::Echo => Answer::Reply(Cow::Borrowed(datagram)),
            Service::Daytime => Answer::Reply(Cow::Owned(daytime(now()).into_bytes())),
        }
    }

    /// [`DatagramRules::answer`] with the work per message: `handler` does its work on
    /// the datagram (the message) before the answer, on the caller's thread — inline
    /// only, as a datagram model has no connection to keep replies in order for. A
    /// dropped datagram gets no work; the answer is the same as without work.
    pub fn answer_with<'a>(
        &self,
        handler: &dyn Handler,
        datagram: &'a [u8],
        truncated: bool,
        now: impl FnOnce() -> SystemTime,
    ) -> Answer<'a> {
        let answer = self.answer(datagram, truncated, now);
        if matches!(answer, Answer::Reply(_)) {
            handler.handle(datagram);
        }
        answer
    }
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The daytime text for `now`: RFC 867 asks only for a human-readable date, so it is
/// the Internet Message Format's (RFC 5322), in UTC, with the CRLF of the era's
/// protocols: `Sat, 28 Nov 2026 14:03:07 +0000\r\n`. `date -d` reads it back, and so
/// does [`parse_daytime`].
pub fn daytime(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[((days + 3) % 7) as usize];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} +0000\r\n",
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Reads a [`daytime`] text back (the client side, and the tests); `None` if it is not
/// one.
pub fn parse_daytime(text: &str) -> Option<SystemTime> {
    let mut words = text.trim_end_matches(['\r', '\n']).split(' ');
    let weekday = words.next()?.strip_suffix(',')?;
    let day: u32 = words.next()?.parse().ok()?;
    let month_name = words.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let year: i64 = words.next()?.parse().ok()?;
    let mut clock = words.next()?.split(':').map(|n| n.parse::<u64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if words.next()? != "+0000" || words.next().is_some() || clock.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if civil_from_days(days) != (year, month, day) || WEEKDAYS[((days + 3) % 7) as usize] != weekday
    {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(days as u64 * 86_400 + h * 3600 + m * 60 + s))
}

/// Days since 1970-01-01 to (year, month 1–12, day 1–31), proleptic Gregorian (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(service: Service, limit: u32) -> DatagramRules {
        DatagramRules::new(service, FrameLimit::new(limit).unwrap())
    }

    #[test]
    fn echo_lends_the_datagram_back_and_drops_what_is_too_long() {
        let echo = rules(Service::Echo, 4);
        let now = SystemTime::now();
        assert_eq!(
            echo.answer(b"", false, || now),
            Answer::Reply(Cow::Borrowed(b""))
        );
        assert!(matches!(
            echo.answer(b"abcd", false, || now),
            Answer::Reply(Cow::Borrowed(b"abcd"))
        ));
        // Cut short by the kernel: the part that fit is not an answer.
        assert_eq!(
            echo.answer(b"abcd", true, || now),
            Answer::Drop(Dropped::Oversize)
        );
        assert_eq!(
            echo.answer(b"abcde", false, || now),
            Answer::Drop(Dropped::Oversize)
        );
    }

    #[test]
    fn work_runs_once_per_answered_datagram_and_changes_no_answer() {
        #[derive(Debug, Default)]
        struct Recorder(std::sync::Mutex<Vec<Vec<u8>>>);
        impl Handler for Recorder {
            fn handle(&self, payload: &[u8]) {
                self.0.lock().unwrap().push(payload.to_vec());
            }
        }
        let recorder = Recorder::default();
        let now = SystemTime::now();
        for service in [Service::Echo, Service::Daytime] {
            let rules = rules(service, 4);
            for (datagram, truncated) in [(&b"ab"[..], false), (b"abcde", false), (b"abcd", true)] {
                assert_eq!(
                    rules.answer_with(&recorder, datagram, truncated, || now),
                    rules.answer(datagram, truncated, || now)
                );
            }
        }
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![b"ab".to_vec(), b"ab".to_vec()],
            "answered ones only"
        );
    }

    #[test]
    fn the_limit_never_exceeds_the_largest_datagram() {
        assert_eq!(rules(Service::Echo, 1 << 20).max_len(), MAX_DATAGRAM);
        assert_eq!(rules(Service::Echo, 0).max_len(), 0);
        const { assert!(MAX_UDP_PAYLOAD_V4 < MAX_DATAGRAM) };
    }

    #[test]
    fn daytime_answers_any_datagram_with_the_time_given() {
        let daytime_rules = rules(Service::Daytime, 100);
        let at = UNIX_EPOCH + Duration::from_secs(1_795_874_587); // 2026-11-28 14:03:07
        let Answer::Reply(text) = daytime_rules.answer(b"what time is it?", false, || at) else {
            panic!("daytime must answer");
        };
        assert_eq!(&*text, b"Sat, 28 Nov 2026 14:03:07 +0000\r\n");
        assert_eq!(daytime(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000\r\n");
        assert_eq!(
            daytime_rules.answer(&[0; 101], false, || at),
            Answer::Drop(Dropped::Oversize)
        );
    }

    #[test]
    fn daytime_text_reads_back_and_nonsense_does_not() {
        for secs in [0u64, 951_782_400, 1_795_874_587, 4_102_444_799, 68_169_600] {
            let at = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_daytime(&daytime(at)), Some(at), "{}", daytime(at));
        }
        for bad in [
            "",
            "hello",
            "Sat, 28 Nov 2026 14:03:07",
            "Fri, 28 Nov 2026 14:03:07 +0000",
            "Sat, 31 Nov 2026 14:03:07 +0000",
            "Sat, 28 Nov 2026 24:03:07 +0000",
            "Sat, 28 Nov 2026 14:03 +0000",
            "Sat, 28 Nov 2026 14:03:07 +0100",
        ] {
            assert_eq!(parse_daytime(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_dates_round_trip_over_centuries() {
        for days in (-1_000_000..1_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
