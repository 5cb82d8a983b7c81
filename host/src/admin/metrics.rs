//! `GET /metrics`: the Prometheus text format, per tenant and host-wide.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use crate::cluster::LinkStats;
use crate::engineio::Engine;
use crate::kv::QuotaKind;
use crate::tenants::Kind;
use crate::tenants::{TenantStats, Tenants};

/// A per-tenant metric read from the tenant's counters.
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    read: fn(&TenantStats) -> u64,
}

const METRICS: [Metric; 20] = [
    Metric {
        name: "nsbox_tenant_sockets",
        kind: "gauge",
        help: "Sockets connected to the tenant.",
        read: |s| s.sockets.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_connects_accepted_total",
        kind: "counter",
        help: "Sockets the middleware let in.",
        read: |s| s.connects_accepted.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_connects_refused_total",
        kind: "counter",
        help: "Sockets refused.",
        read: |s| s.connects_refused.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_events_in_total",
        kind: "counter",
        help: "Client events handed to the tenant.",
        read: |s| s.events.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_bytes_in_total",
        kind: "counter",
        help: "Bytes of client events received.",
        read: |s| s.bytes_in.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_events_dropped_total",
        kind: "counter",
        help: "Client events dropped: the tenant's queue was full or its events per second spent.",
        read: |s| s.dropped_events.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_storage_ops_total",
        kind: "counter",
        help: "Storage operations the tenant ran (each key of a batch counted).",
        read: |s| s.storage_ops.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_log_lines_total",
        kind: "counter",
        help: "Lines the tenant wrote to the host's log (its own and the host's about it).",
        read: |s| s.log_lines.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_log_dropped_total",
        kind: "counter",
        help: "Log lines dropped: the tenant wrote more per second than it may.",
        read: |s| s.log_dropped.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_pending_acks",
        kind: "gauge",
        help: "Server-to-client acks the tenant awaits.",
        read: |s| s.pending_acks.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_events_out_total",
        kind: "counter",
        help: "Messages sent, each recipient of a broadcast counted.",
        read: |s| s.events_out.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_bytes_out_total",
        kind: "counter",
        help: "Bytes sent, each recipient of a broadcast counted.",
        read: |s| s.bytes_out.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_traps_total",
        kind: "counter",
        help: "Instances stopped by a trap, a deadline or a limit.",
        read: |s| s.faults.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_restarts_total",
        kind: "counter",
        help: "Instances started again after a fault.",
        read: |s| s.restarts(),
    },
    Metric {
        name: "nsbox_tenant_evictions_total",
        kind: "counter",
        help: "Instances stopped after the tenant had no sockets for evict_idle_after_ms.",
        read: |s| s.evictions.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_sockets_recovered_total",
        kind: "counter",
        help:
            "Sockets given back to their clients within recovery_window_ms, with what they missed.",
        read: |s| s.recovered.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_instances",
        kind: "gauge",
        help: "Instances of the tenant that exist now (0 while evicted).",
        read: |s| s.instances.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_throttled_total",
        kind: "counter",
        help: "Calls that waited for the next second's CPU budget.",
        read: |s| s.throttled.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_quarantined",
        kind: "gauge",
        help: "1 while the tenant refuses connections after repeated faults.",
        read: |s| s.quarantined.load(Relaxed),
    },
    Metric {
        name: "nsbox_tenant_memory_bytes",
        kind: "gauge",
        help: "Linear memory of the live instance.",
        read: |s| s.memory_bytes.load(Relaxed),
    },
];

/// What the admin API counts itself.
#[derive(Debug, Default)]
pub(crate) struct AdminCounters {
    /// Uploads being received, compiled or stored.
    pub(crate) uploads_in_flight: AtomicUsize,
    /// Uploads refused for what compiling them would cost (`compile_limit`).
    pub(crate) compile_limit: AtomicU64,
    /// Uploads refused for taking too long to compile (`compile_timeout`).
    pub(crate) compile_timeout: AtomicU64,
}

/// Renders every metric: the host's, each tenant's version, and the counters of the
/// tenants reached since this node started (one never reached has only zeros, and a
/// node of 100,000 tenants would write hundreds of megabytes of them); with `only`,
/// that tenant's alone.
pub(crate) fn render(
    tenants: &Tenants,
    engine: &Engine,
    admin: &AdminCounters,
    cluster: Option<&LinkStats>,
    only: Option<&str>,
) -> String {
    let mut out = String::new();
    if let Some(link) = cluster {
        family(
            &mut out,
            "nsbox_cluster_link_up",
            "gauge",
            "1 while this node's connections to the cluster's Redis are up, else 0.",
        );
        let up = u8::from(link.up.load(Relaxed));
        let _ = writeln!(out, "nsbox_cluster_link_up {up}");
        family(
            &mut out,
            "nsbox_cluster_messages_total",
            "counter",
            "Cluster messages published to and received from the other nodes, and dropped (link down, queue full, or read too slowly).",
        );
        for (what, count) in [
            ("published", &link.published),
            ("received", &link.received),
            ("dropped", &link.dropped),
        ] {
            let count = count.load(Relaxed);
            let _ = writeln!(
                out,
                "nsbox_cluster_messages_total{{what=\"{what}\"}} {count}"
            );
        }
    }
    family(
        &mut out,
        "nsbox_admin_uploads_in_flight",
        "gauge",
        "Uploads being received, compiled or stored.",
    );
    let in_flight = admin.uploads_in_flight.load(Relaxed);
    let _ = writeln!(out, "nsbox_admin_uploads_in_flight {in_flight}");
    family(
        &mut out,
        "nsbox_admin_compiles_refused_total",
        "counter",
        "Uploads refused by the compile limits, by code.",
    );
    for (code, count) in [
        ("compile_limit", &admin.compile_limit),
        ("compile_timeout", &admin.compile_timeout),
    ] {
        let count = count.load(Relaxed);
        let _ = writeln!(
            out,
            "nsbox_admin_compiles_refused_total{{code=\"{code}\"}} {count}"
        );
    }
    family(
        &mut out,
        "nsbox_slow_clients_closed_total",
        "counter",
        "Connections closed because the client let more wait than max_buffered_bytes or the packet bound.",
    );
    let _ = writeln!(
        out,
        "nsbox_slow_clients_closed_total {}",
        engine.slow_clients_closed()
    );
    let (polling, websocket) = engine.transport_counts();
    family(
        &mut out,
        "nsbox_connections",
        "gauge",
        "Open Engine.IO connections by transport.",
    );
    let _ = writeln!(out, "nsbox_connections{{transport=\"polling\"}} {polling}");
    let _ = writeln!(
        out,
        "nsbox_connections{{transport=\"websocket\"}} {websocket}"
    );

    let slots: Vec<_> = match only {
        Some(name) => tenants.get(name).into_iter().collect(),
        None => tenants
            .names()
            .iter()
            .filter_map(|name| tenants.get(name))
            .collect(),
    };
    family(
        &mut out,
        "nsbox_tenant_version",
        "gauge",
        "The version serving (0: from the configuration).",
    );
    for slot in &slots {
        let version = slot.current().version();
        let _ = writeln!(
            out,
            "nsbox_tenant_version{{tenant=\"{}\"}} {version}",
            slot.name()
        );
    }
    let slots: Vec<_> = slots
        .into_iter()
        .filter(|slot| slot.current().stats().reached.load(Relaxed))
        .collect();
    for metric in &METRICS {
        family(&mut out, metric.name, metric.kind, metric.help);
        for slot in &slots {
            let value = (metric.read)(slot.current().stats());
            let _ = writeln!(out, "{}{{tenant=\"{}\"}} {value}", metric.name, slot.name());
        }
    }
    family(
        &mut out,
        "nsbox_tenant_limit_trips_total",
        "counter",
        "Limits that tripped, by limit: faults that stopped an instance, and sockets or connections stopped by a rate, room or socket limit.",
    );
    for slot in &slots {
        let current = slot.current();
        for (limit, trips) in Kind::LIMITS.iter().zip(&current.stats().limit_trips) {
            let trips = trips.load(Relaxed);
            let _ = writeln!(
                out,
                "nsbox_tenant_limit_trips_total{{tenant=\"{}\",limit=\"{limit}\"}} {trips}",
                slot.name()
            );
        }
    }
    family(
        &mut out,
        "nsbox_tenant_storage_refused_total",
        "counter",
        "Storage operations refused (an error to the tenant, not a fault), by the quota they would break.",
    );
    for slot in &slots {
        let current = slot.current();
        for (quota, refused) in QuotaKind::ALL.iter().zip(&current.stats().storage_refused) {
            let _ = writeln!(
                out,
                "nsbox_tenant_storage_refused_total{{tenant=\"{}\",quota=\"{}\"}} {}",
                slot.name(),
                quota.name(),
                refused.load(Relaxed)
            );
        }
    }
    family(
        &mut out,
        "nsbox_tenant_call_cpu_seconds",
        "histogram",
        "CPU time of each call into the tenant.",
    );
    for slot in &slots {
        let (buckets, count, sum) = slot.current().stats().call_cpu.snapshot();
        let tenant = slot.name();
        let series = "nsbox_tenant_call_cpu_seconds";
        for (bound, cumulative) in buckets {
            let _ = writeln!(
                out,
                "{series}_bucket{{tenant=\"{tenant}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{series}_bucket{{tenant=\"{tenant}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "{series}_sum{{tenant=\"{tenant}\"}} {sum}");
        let _ = writeln!(out, "{series}_count{{tenant=\"{tenant}\"}} {count}");
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
