//! A model run with a knob set: `mio+offload4` is `echolab serve mio --offload 4`,
//! `pool+workers100` is `echolab serve pool --workers 100`. The `work` scenario runs
//! these beside the models as registered, so "inline or offloaded" and "the default
//! worker count or the one Little's law asks for" are rows of one table.

use echolab_registry::Model;

use crate::work::{WorkPreset, OFFLOAD_THREADS, WORK_CONNS};

/// A model's name with its knobs, as it appears in results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant<'a> {
    /// The registered model.
    pub model: &'a str,
    /// `--offload N`.
    pub offload: Option<usize>,
    /// `--workers N`.
    pub workers: Option<usize>,
}

impl<'a> Variant<'a> {
    /// Reads `model`, `model+offloadN` or `model+workersN`; an unknown suffix leaves the
    /// whole label as the model (which the registry then does not know).
    pub fn parse(label: &'a str) -> Variant<'a> {
        let plain = Variant {
            model: label,
            offload: None,
            workers: None,
        };
        let Some((model, knob)) = label.split_once('+') else {
            return plain;
        };
        let number = |prefix: &str| knob.strip_prefix(prefix)?.parse::<usize>().ok();
        match (number("offload"), number("workers")) {
            (Some(n), _) => Variant {
                model,
                offload: Some(n),
                workers: None,
            },
            (_, Some(n)) => Variant {
                model,
                offload: None,
                workers: Some(n),
            },
            _ => plain,
        }
    }

    /// Whether it is the model as registered, with no knob set.
    pub fn is_plain(&self) -> bool {
        self.offload.is_none() && self.workers.is_none()
    }

    /// Whether it runs a cell with this `work` (a cell's [`crate::scenario::Cell::work`]).
    /// A knob is the `work` scenario's question, so a variant runs only work cells; and a
    /// pool as large as the connection count (`WORK_CONNS`) answers a blocking call's
    /// question only — for CPU work more threads than CPUs add nothing but switches.
    pub fn runs(&self, work: Option<WorkPreset>) -> bool {
        let Some(work) = work else {
            return self.is_plain();
        };
        match self.offload {
            Some(n) if n > OFFLOAD_THREADS => work.blocks(),
            _ => true,
        }
    }

    /// The `echolab serve` flags its knobs stand for.
    pub fn server_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(n) = self.offload {
            args.extend(["--offload".to_string(), n.to_string()]);
        }
        if let Some(n) = self.workers {
            args.extend(["--workers".to_string(), n.to_string()]);
        }
        args
    }
}

/// The variants the `work` scenario adds for `model`: an event loop that can offload
/// runs with [`OFFLOAD_THREADS`] workers (libuv's default pool) and, for blocking work,
/// with one per connection ([`WORK_CONNS`]: Little's law's L when every connection
/// waits on a blocking call at once); fixed workers that each hold a client to its end
/// run with one per connection as well — Little's law's L for them is the number of
/// connections, since a worker is busy for a connection's whole life, not for one
/// message's service time.
pub(crate) fn work_variants(model: &Model) -> Vec<String> {
    let mut variants = Vec::new();
    if model.takes_offload() {
        variants.push(format!("{}+offload{OFFLOAD_THREADS}", model.name));
        variants.push(format!("{}+offload{WORK_CONNS}", model.name));
    }
    if model.one_client_per_worker() && model.is_stream() {
        variants.push(format!("{}+workers{WORK_CONNS}", model.name));
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_back_into_flags() {
        let v = Variant::parse("mio+offload4");
        assert_eq!((v.model, v.offload), ("mio", Some(4)));
        assert_eq!(v.server_args(), ["--offload", "4"]);
        let v = Variant::parse("pool+workers100");
        assert_eq!(v.server_args(), ["--workers", "100"]);
        assert!(Variant::parse("udp-mio").is_plain());
        assert_eq!(Variant::parse("mio+turbo").model, "mio+turbo");
    }

    #[test]
    fn pool_and_prefork_get_a_worker_per_connection() {
        let pool = echolab_registry::find("pool").unwrap();
        assert_eq!(work_variants(pool), ["pool+workers100"]);
        let threads = echolab_registry::find("threads").unwrap();
        assert!(work_variants(threads).is_empty());
    }

    #[test]
    fn a_pool_per_connection_runs_the_blocking_work_only() {
        let mio = echolab_registry::find("mio").unwrap();
        assert_eq!(work_variants(mio), ["mio+offload4", "mio+offload100"]);
        let cells = crate::scenario::Scenario::Work.cells(false);
        let big = Variant::parse("mio+offload100");
        let small = Variant::parse("mio+offload4");
        for cell in &cells {
            let work = cell.work.unwrap();
            assert_eq!(big.runs(cell.work), work.blocks(), "{cell:?}");
            assert!(small.runs(cell.work));
        }
        let echo = crate::scenario::Scenario::Latency.cells(false)[0];
        assert!(!small.runs(echo.work) && Variant::parse("mio").runs(echo.work));
    }
}
