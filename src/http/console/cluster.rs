//! This server and the store's leases: which server may write to each partition of the
//! store, at which epoch, until when (PostgreSQL; the embedded store has one server and no
//! lease).

use maud::html;

use super::layout::{self, Shell};
use super::{Ctx, Page};
use crate::config::Backend;
use crate::http::ApiError;

pub fn show(ctx: &Ctx<'_>) -> Page {
    ctx.admin()?;
    let store = &ctx.shop.store;
    let leases = store.leases().map_err(ApiError::from)?;
    let nodes = store.nodes().map_err(ApiError::from)?;
    let backend = match ctx.shop.settings.storage.backend {
        Backend::Sled => "sled (embedded; one server, no lease)",
        Backend::Postgres => "PostgreSQL",
    };
    let content = html! {
        p { "This server: " code { (store.node_id()) } ". Store: " (backend) "." }
        @if leases.is_empty() {
            p.muted { "No lease: on the embedded store this server is the only writer." }
        } @else {
            table {
                thead { tr { th { "Partition" } th { "Owner" } th { "Epoch" } th { "Lease expires (database clock)" } } }
                tbody {
                    @for l in &leases {
                        tr {
                            td { (l.partition) }
                            td {
                                code { (l.owner) }
                                @if l.owner == store.node_id() { " (this server)" }
                            }
                            td { (l.epoch) }
                            td { (l.expires_at) }
                        }
                    }
                }
            }
            p.muted {
                "Each server holds a fair share of the partitions and writes only in those; the others "
                "take a server's partitions over once their leases expire (cluster.lease_ms), and the "
                "late writes of a server that lost them are refused."
            }
            h2 { "Servers" }
            table {
                thead { tr { th { "Server" } th { "Role" } th { "Partitions held" } th { "Reached at" } th { "Started" } th { "Last heartbeat" } } }
                tbody {
                    @for n in &nodes {
                        tr {
                            td {
                                code { (n.node_id) }
                                @if n.node_id == store.node_id() { " (this server)" }
                            }
                            td { @if n.leader { "leader" } @else { "follower" } }
                            td { (n.partitions) " of " (leases.len()) }
                            td { code { (n.advertise_url) } }
                            td { (n.started_at) }
                            td {
                                (n.heartbeat_at) " (" (n.heartbeat_age_ms) " ms ago)"
                                @if n.stale { " " strong { "stale" } }
                            }
                        }
                    }
                }
            }
            p.muted {
                "Followers forward every request to the leader, so clients and webhook senders can "
                "reach any server. A server with no heartbeat for three leases is stale; the leader "
                "forgets it after ten (a server that was only paused comes back at its next heartbeat)."
            }
        }
    };
    Ok(layout::html_response(200, layout::page(ctx, "Cluster", Shell { refresh: true }, content)))
}
