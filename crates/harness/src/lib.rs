//! The benchmark harness behind `echolab compare`.
//!
//! Each run of each cell starts a fresh server as a child process (`echolab serve MODEL
//! --addr 127.0.0.1:0`), reads its `listening on` line, drives it with the one load
//! generator (`echolab_client::load`, in this process), and stops it with SIGTERM,
//! reading back its stats line. The server's side is read from `/proc` while the load
//! runs: CPU time inside the measured window, peak memory, threads and processes of the
//! whole process tree (a `fork` server is many processes). The client and the server
//! share the machine's cores, so next to throughput the harness reports responses per
//! server CPU-second, which separates the models where raw throughput cannot.
//!
//! `echolab soak` runs here too: the client's soak traffic with the server's memory and
//! descriptors sampled from `/proc` ([`run_soak`]).
//!
//! Results go to `results/<date>-<host>/` as CSV, JSON, a Markdown README with the
//! machine and the exact command, and SVG charts.

#![forbid(unsafe_code)]

mod agents;
mod baseline;
mod cell;
mod charts;
mod columns;
mod compare;
mod cpu_window;
mod error;
mod estimate;
mod figures;
mod files;
mod floor;
mod floor_cost;
mod host;
mod machine;
mod marked;
mod marks;
pub use echolab_server::procfs;
mod sampler;
mod scenario;
mod soak;
mod summary;
mod table;
mod topology;
mod variant;
mod work;
mod work_table;

pub use agents::{run_agents, shares, AgentsRun};
pub use baseline::{diff as diff_runs, render as render_diff, LoadedRun, RunDiff};
pub use cell::{run_cell, Measurement, RunSettings, UdpFigures, CLIENT_BOUND_SHARE};
pub use compare::run_plan;
pub use error::HarnessError;
pub use estimate::{minutes, say as say_duration};
pub use files::{csv, redraw_charts, write_run, RunResults};
pub use floor::{pin_this_thread, Floor, RoundTrip};
pub use floor_cost::{measure as measure_floor_costs, FloorCost};
pub use host::{Host, Hosts};
pub use machine::Machine;
pub use marked::marked_cells;
pub use marks::Marks;
pub use scenario::{default_cells, Cell, Pin, Plan, Scenario};
pub use server::{
    forward_lines, serve_args, ServerExit, ServerProcess, Snapshots, SNAPSHOT_TIMEOUT,
};
pub use soak::{run_soak, SoakReport};
pub use summary::{summarize, Spread, Summary};
pub use table::terminal as terminal_table;
pub use topology::{HostFloor, HostInfo, Placed, Topology};
pub use variant::Variant;
pub use work::{md_c_mean_us, WorkPreset};

mod server;
