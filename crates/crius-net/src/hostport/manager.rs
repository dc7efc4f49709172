//! crius's hostport manager: DNAT rules in its own nftables tables plus the sockets that hold
//! the ports, per pod.
//!
//! One lock serialises every change: each reads which pod chains exist, then applies one
//! transaction for both families. The tables are the truth about rules (they outlive a daemon
//! restart); the sockets are in memory and are reopened by `resync`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use crius_core::ports::network::{HostPortPod, HostPortResyncReport};
use crius_core::sandbox::model::PortMapping;

use super::host::{enable_route_localnet, pod_facing_interface};
use super::nft::Nft;
use super::plan::{Family, PodPlan, plan};
use super::render::{FamilyChange, PodChain, render_family};
use super::sockets::{HeldPort, hold_all};
use crate::error::NetError;

pub struct HostPortManager {
    table: String,
    mark: u32,
    nft: Nft,
    /// Whether the kernel has IPv6 at all: without it the ip6 table is neither made nor read.
    ipv6: bool,
    /// Held sockets by pod id.
    held: Mutex<BTreeMap<String, Vec<HeldPort>>>,
}

/// A pod's change in both families.
#[derive(Default)]
struct Change {
    v4: FamilyChange,
    v6: FamilyChange,
}

impl Change {
    fn family(&mut self, f: Family) -> &mut FamilyChange {
        match f {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }
}

fn valid_pod_id(pod_id: &str) -> Result<(), NetError> {
    // The id goes into a chain name in a script: nothing but a plain identifier.
    let ok = !pod_id.is_empty()
        && pod_id.len() <= 200
        && pod_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidRequest {
            what: format!("pod sandbox id {pod_id:?}"),
            reason: "must be 1 to 200 letters, digits, '-' or '_'".into(),
        })
    }
}

impl HostPortManager {
    /// `table` names crius's table in each family (`ip <table>`, `ip6 <table>`); `mark` is the
    /// packet mark bit that selects connections to masquerade.
    pub fn new(table: impl Into<String>, mark: u32) -> Self {
        let ipv6 = std::path::Path::new("/proc/sys/net/ipv6").exists();
        HostPortManager { table: table.into(), mark, nft: Nft::default(), ipv6, held: Mutex::new(BTreeMap::new()) }
    }

    pub fn with_nft(mut self, nft: Nft) -> Self {
        self.nft = nft;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn nft(&self) -> &Nft {
        &self.nft
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<HeldPort>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pods with a chain, per family.
    fn existing(&self) -> Result<[BTreeSet<String>; 2], NetError> {
        let v6 = if self.ipv6 { self.nft.pod_chains(&self.table, Family::V6)? } else { Vec::new() };
        Ok([self.nft.pod_chains(&self.table, Family::V4)?.into_iter().collect(), v6.into_iter().collect()])
    }

    fn apply(&self, action: &str, change: &Change) -> Result<(), NetError> {
        let mut script = render_family(&self.table, Family::V4, self.mark, &change.v4);
        if self.ipv6 || change.v6 != FamilyChange::default() {
            script.push_str(&render_family(&self.table, Family::V6, self.mark, &change.v6));
        }
        self.nft.apply(action, &script)
    }

    /// The pod's chains in each family, with the interface leading to its IP.
    fn chains(pod_id: &str, plan: &PodPlan) -> Vec<(Family, PodChain)> {
        let mut out = Vec::new();
        for family in Family::ALL {
            let forwards: Vec<_> = plan.forwards_of(family).cloned().collect();
            let Some(first) = forwards.first() else { continue };
            let pod_iface = pod_facing_interface(first.pod_ip);
            if let (Family::V4, Some(iface)) = (family, pod_iface.as_deref()) {
                enable_route_localnet(iface);
            }
            out.push((family, PodChain { pod_id: pod_id.to_string(), forwards, pod_iface }));
        }
        out
    }

    /// Forwards and holds the pod's host ports, replacing what it had. All or nothing.
    pub fn add(&self, pod_id: &str, mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<(), NetError> {
        valid_pod_id(pod_id)?;
        let plan = plan(mappings, pod_ips)?;
        let mut held = self.lock();
        // Its own earlier sockets would refuse the same ports: the pod's old state goes first.
        held.remove(pod_id);
        let existing = self.existing()?;
        let sockets = match hold_all(&plan.holds) {
            Ok(s) => s,
            Err(e) => {
                self.drop_chains(pod_id, &existing)?;
                return Err(e);
            }
        };
        let mut change = Change::default();
        let chains = Self::chains(pod_id, &plan);
        for (i, family) in Family::ALL.into_iter().enumerate() {
            let c = change.family(family);
            c.dispatch = existing[i].clone();
            c.dispatch.remove(pod_id);
            match chains.iter().find(|(f, _)| *f == family) {
                Some((_, chain)) => {
                    c.dispatch.insert(pod_id.to_string());
                    c.upsert.push(chain.clone());
                }
                None if existing[i].contains(pod_id) => c.delete.push(pod_id.to_string()),
                None => {}
            }
        }
        if plan.is_empty() && !existing.iter().any(|e| e.contains(pod_id)) {
            return Ok(());
        }
        // On failure the sockets close with `sockets`, and the transaction left nothing.
        self.apply(&format!("adding the host ports of pod sandbox {pod_id}"), &change)?;
        super::conntrack::forget_udp_flows(pod_id, &plan.forwards);
        if !sockets.is_empty() {
            held.insert(pod_id.to_string(), sockets);
        }
        tracing::debug!(pod_id, forwards = plan.forwards.len(), "host ports added");
        Ok(())
    }

    /// Removes the pod's chains (if any) in a transaction of their own.
    fn drop_chains(&self, pod_id: &str, existing: &[BTreeSet<String>; 2]) -> Result<(), NetError> {
        if !existing.iter().any(|e| e.contains(pod_id)) {
            return Ok(());
        }
        let mut change = Change::default();
        for (i, family) in Family::ALL.into_iter().enumerate() {
            let c = change.family(family);
            c.dispatch = existing[i].clone();
            if c.dispatch.remove(pod_id) {
                c.delete.push(pod_id.to_string());
            }
        }
        self.apply(&format!("removing the host ports of pod sandbox {pod_id}"), &change)
    }

    /// Deletes the pod's rules, then closes its sockets. Idempotent; needs no IP.
    pub fn remove(&self, pod_id: &str) -> Result<(), NetError> {
        valid_pod_id(pod_id)?;
        let mut held = self.lock();
        let existing = self.existing()?;
        self.drop_chains(pod_id, &existing)?;
        // Closed only once nothing forwards the ports any more.
        held.remove(pod_id);
        Ok(())
    }

    /// Restores rules and sockets of `live` pods and deletes the chains of every other pod, in
    /// one transaction. A live pod whose port cannot be held again (taken while crius was
    /// down) keeps its rules and is reported.
    pub fn resync(&self, live: &[HostPortPod]) -> Result<HostPortResyncReport, NetError> {
        let mut held = self.lock();
        let existing = self.existing()?;
        let mut report = HostPortResyncReport::default();
        let mut change = Change::default();
        let mut keep = BTreeSet::new();
        let mut new_sockets = BTreeMap::new();
        for pod in live {
            if let Err(e) = valid_pod_id(&pod.pod_id) {
                report.problems.push(e.to_string());
                continue;
            }
            let plan = match plan(&pod.mappings, &pod.ips) {
                Ok(p) => p,
                Err(e) => {
                    report.problems.push(format!("pod sandbox {}: {e}", pod.pod_id));
                    continue;
                }
            };
            if plan.is_empty() {
                continue;
            }
            keep.insert(pod.pod_id.clone());
            if !held.contains_key(&pod.pod_id) {
                match hold_all(&plan.holds) {
                    Ok(sockets) => {
                        new_sockets.insert(pod.pod_id.clone(), sockets);
                    }
                    Err(e) => report.problems.push(format!("pod sandbox {}: {e}", pod.pod_id)),
                }
            }
            for (family, chain) in Self::chains(&pod.pod_id, &plan) {
                let c = change.family(family);
                c.dispatch.insert(pod.pod_id.clone());
                c.upsert.push(chain);
            }
            report.restored.push(pod.pod_id.clone());
        }
        let mut removed = BTreeSet::new();
        for (i, family) in Family::ALL.into_iter().enumerate() {
            let c = change.family(family);
            for pod_id in &existing[i] {
                if !c.dispatch.contains(pod_id) {
                    c.delete.push(pod_id.clone());
                    if !keep.contains(pod_id) {
                        removed.insert(pod_id.clone());
                    }
                }
            }
        }
        report.removed = removed.into_iter().collect();
        self.apply("resyncing host ports", &change)?;
        held.retain(|pod_id, _| keep.contains(pod_id));
        held.extend(new_sockets);
        tracing::info!(
            restored = report.restored.len(),
            removed = report.removed.len(),
            problems = report.problems.len(),
            "host ports resynced"
        );
        Ok(report)
    }

    /// Deletes crius's tables and closes every socket (tests; uninstalling).
    pub fn delete_tables(&self) -> Result<(), NetError> {
        let mut held = self.lock();
        self.nft.delete_tables(&self.table)?;
        held.clear();
        Ok(())
    }

    /// Pods holding sockets now.
    pub fn held_pods(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}
