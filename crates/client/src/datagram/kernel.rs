//! Where a lost datagram went, from the kernel's own counters: `/proc/net/snmp`'s `Udp:`
//! line (for the whole network namespace: a receive buffer that overflowed,
//! `RcvbufErrors`; a send buffer that did, `SndbufErrors`; any datagram dropped on
//! arrival, `InErrors`) and the `drops` column of `/proc/net/udp` and `/proc/net/udp6`,
//! per socket — the server's sockets (by their port) and the client's own.

use std::collections::HashSet;

use serde::Serialize;

/// The kernel's UDP drop counters over one run (differences, after minus before).
/// `None` where `/proc` could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KernelDrops {
    /// `Udp: RcvbufErrors`: datagrams dropped because a socket's receive buffer was
    /// full — the server's (requests) or the client's (replies). System-wide.
    pub rcvbuf_errors: Option<u64>,
    /// `Udp: SndbufErrors`: datagrams dropped because a send buffer was full.
    pub sndbuf_errors: Option<u64>,
    /// `Udp: InErrors`: datagrams dropped on arrival for any reason (includes
    /// `RcvbufErrors`).
    pub in_errors: Option<u64>,
    /// Drops counted on the server's sockets (`/proc/net/udp` `drops`, every socket
    /// bound to the server's port): requests the server never saw.
    pub server_socket_drops: Option<u64>,
    /// Drops counted on the client's own sockets: replies the client never saw.
    pub client_socket_drops: Option<u64>,
}

impl KernelDrops {
    /// A short line for the summary.
    pub(super) fn line(&self) -> String {
        let n = |x: Option<u64>| x.map_or("?".to_string(), |x| x.to_string());
        format!(
            "kernel drops: server sockets {}, client sockets {}; /proc/net/snmp Udp (whole \
             system): RcvbufErrors {}, SndbufErrors {}, InErrors {}",
            n(self.server_socket_drops),
            n(self.client_socket_drops),
            n(self.rcvbuf_errors),
            n(self.sndbuf_errors),
            n(self.in_errors),
        )
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Default)]
pub(super) struct Snapshot {
    snmp: Option<[u64; 3]>,
    server: Option<u64>,
    client: Option<u64>,
}

impl Snapshot {
    /// Reads the counters now: the server's sockets by `server_port`, the client's by
    /// `client_ports`.
    pub(super) fn take(server_port: u16, client_ports: &HashSet<u16>) -> Snapshot {
        let snmp = std::fs::read_to_string("/proc/net/snmp")
            .ok()
            .and_then(|text| udp_counters(&text));
        let tables = udp_tables();
        let drops = |ports: &dyn Fn(u16) -> bool| {
            (!tables.is_empty()).then(|| tables.iter().map(|t| socket_drops(t, ports)).sum())
        };
        Snapshot {
            snmp,
            server: drops(&|port| port == server_port),
            client: drops(&|port| client_ports.contains(&port)),
        }
    }

    /// What changed from `before` to `self`.
    pub(super) fn since(&self, before: &Snapshot) -> KernelDrops {
        let diff = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?));
        let snmp = |i: usize| diff(self.snmp.map(|s| s[i]), before.snmp.map(|s| s[i]));
        KernelDrops {
            rcvbuf_errors: snmp(0),
            sndbuf_errors: snmp(1),
            in_errors: snmp(2),
            server_socket_drops: diff(self.server, before.server),
            // The client's sockets are new: whatever they dropped, they dropped in the run.
            client_socket_drops: self.client,
        }
    }
}

/// Drops counted now on the sockets bound to `port` (the `drops` column of
/// `/proc/net/udp` and `/proc/net/udp6`): what the kernel discarded because their
/// receive buffers were full. `None` where neither table can be read.
pub fn socket_drops_on_port(port: u16) -> Option<u64> {
    let tables = udp_tables();
    (!tables.is_empty()).then(|| {
        tables
            .iter()
            .map(|t| socket_drops(t, &|bound| bound == port))
            .sum()
    })
}

/// The text of `/proc/net/udp` and `/proc/net/udp6`, those that can be read.
fn udp_tables() -> Vec<String> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .collect()
}

/// `[RcvbufErrors, SndbufErrors, InErrors]` from the text of `/proc/net/snmp`, whose
/// `Udp:` lines are a header line and a value line.
fn udp_counters(text: &str) -> Option<[u64; 3]> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp: "));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let value = |name: &str| -> Option<u64> {
        let at = names.iter().position(|n| *n == name)?;
        values.get(at)?.parse().ok()
    };
    Some([
        value("RcvbufErrors")?,
        value("SndbufErrors")?,
        value("InErrors")?,
    ])
}

/// The sum of the `drops` column (the last) over the sockets of a `/proc/net/udp` table
/// whose local port `matches`.
fn socket_drops(table: &str, matches: &dyn Fn(u16) -> bool) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            let drops: u64 = line.split_whitespace().last()?.parse().ok()?;
            matches(port).then_some(drops)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_udp_line_of_snmp() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n\
                    Udp: 146 0 7 147 5 2 0\n\
                    UdpLite: InDatagrams NoPorts InErrors\nUdpLite: 0 0 0\n";
        assert_eq!(udp_counters(text), Some([5, 2, 7]));
        assert_eq!(udp_counters("Ip: 1\n"), None);
    }

    #[test]
    fn sums_the_drops_of_the_sockets_on_a_port() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          1: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 1 2 0000000000000000 12\n\
          2: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 3 2 0000000000000000 3\n\
          3: 0100007F:1F91 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4 2 0000000000000000 100\n";
        assert_eq!(socket_drops(table, &|p| p == 8080), 15);
        assert_eq!(socket_drops(table, &|p| p == 8081), 100);
        assert_eq!(socket_drops(table, &|_| false), 0);
    }

    #[test]
    fn this_machine_has_the_counters() {
        let snapshot = Snapshot::take(1, &HashSet::new());
        if std::path::Path::new("/proc/net/snmp").exists() {
            assert!(snapshot.snmp.is_some());
        }
        let drops = snapshot.since(&snapshot);
        assert!(drops.rcvbuf_errors.is_none_or(|n| n == 0));
    }
}
