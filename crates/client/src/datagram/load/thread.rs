//! One generator thread: a mio loop over its share of the sockets, sending (closed or
//! open loop), receiving and expiring until the end and the wait for the last replies.

use std::collections::VecDeque;
use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::config::DatagramLoadConfig;
use super::flow::Flow;
use super::phases::Phases;
use super::tally::Tally;
use super::PER_WAKE;
use crate::cpu::ThreadCpu;
use crate::load::schedule::Schedule;
use crate::load::wakeups::{Wakeups, ALARM};

/// The loop wakes at least this often (reply timeouts, the end of the run).
const TICK: Duration = Duration::from_millis(50);

/// One generator thread over its sockets, from the start to the end of the run and its
/// wait for the last replies.
pub(super) fn run_thread(
    config: &DatagramLoadConfig,
    sockets: Vec<(u32, &UdpSocket)>,
    phases: &Phases,
) -> io::Result<Tally> {
    let mut poll = Poll::new()?;
    let mut wakeups = Wakeups::new(poll.registry())?;
    let mut flows = Vec::with_capacity(sockets.len());
    let per_socket_rate = config.rate.map(|r| r / config.sockets as f64);
    for (index, (id, socket)) in sockets.into_iter().enumerate() {
        poll.registry().register(
            &mut SourceFd(&socket.as_raw_fd()),
            Token(index),
            Interest::READABLE,
        )?;
        // Open loop: staggered so the sockets do not all send in the same instant.
        let schedule = per_socket_rate
            .map(|rate| Schedule::new(phases.start, rate, f64::from(id) / config.sockets as f64));
        if let Some(schedule) = &schedule {
            wakeups.at(schedule.next_due(), index);
        }
        flows.push(Flow {
            id,
            socket,
            base: 0,
            window: VecDeque::new(),
            awaited: 0,
            highest: None,
            schedule,
            readable: true,
            responses: 0,
        });
    }
    let mut tally = Tally::new();
    let mut payload = vec![0u8; config.size];
    let mut buf = vec![0u8; super::super::RECV_BUFFER];
    let mut events = Events::with_capacity(256);
    let give_up_at = phases.end + config.reply_timeout;
    let mut cpu = ThreadCpu::new(phases.measure_from, phases.end);
    loop {
        let now = Instant::now();
        cpu.observe(now);
        let sending = now < phases.end;
        if !sending && (now >= give_up_at || flows.iter().all(|f| f.awaited == 0)) {
            break;
        }
        let wake = if sending && config.rate.is_some() {
            wakeups.next_wake(now, phases.end)?
        } else {
            (now + TICK).min(if sending { phases.end } else { give_up_at })
        };
        let timeout = if flows.iter().any(|f| f.readable) {
            Duration::ZERO
        } else {
            wake.saturating_duration_since(now)
        };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() != ALARM {
                if let Some(flow) = flows.get_mut(event.token().0) {
                    flow.readable = true;
                }
            }
        }
        for flow in flows.iter_mut().filter(|f| f.readable) {
            flow.receive(&mut buf, config.size, &mut tally, phases);
        }
        let now = Instant::now();
        if let Some(cutoff) = now.checked_sub(config.reply_timeout) {
            for flow in &mut flows {
                flow.expire(cutoff, &mut tally, phases);
            }
        }
        if now >= phases.end {
            continue;
        }
        if config.rate.is_some() {
            // The sockets due now, each once: a socket behind its schedule sends at most
            // PER_WAKE and is queued again (due at once), but only after the loop has
            // read the replies waiting, so a generator that falls behind still reads.
            let mut due_now = Vec::new();
            while let Some(index) = wakeups.pop_due(now) {
                due_now.push(index);
            }
            for index in due_now {
                let flow = &mut flows[index];
                for _ in 0..PER_WAKE {
                    let Some(due) = flow.schedule.as_ref().map(Schedule::next_due) else {
                        break;
                    };
                    if due > now {
                        break;
                    }
                    flow.send(due, &mut payload, &mut tally, phases);
                    if let Some(schedule) = &mut flow.schedule {
                        schedule.advance();
                    }
                }
                if let Some(due) = flow.schedule.as_ref().map(Schedule::next_due) {
                    if due < phases.end {
                        wakeups.at(due, index);
                    }
                }
            }
        } else {
            // Closed loop: top each socket up to `depth` awaited (one try per missing
            // datagram, so a socket whose sends fail does not spin).
            for flow in &mut flows {
                for _ in flow.awaited..config.depth {
                    flow.send(now, &mut payload, &mut tally, phases);
                }
            }
        }
    }
    // What is still awaited after the wait is lost.
    for flow in &mut flows {
        while !flow.window.is_empty() {
            flow.give_up_front(&mut tally, phases);
        }
    }
    cpu.observe(phases.end.max(Instant::now()));
    tally.cpu = cpu.window();
    tally.per_socket = flows.iter().map(|f| f.responses).collect();
    Ok(tally)
}
