//! Mitigation while the monitor runs: the policy's decisions applied to the backend
//! and turned into `ban`/`unban` events, and the operator's requests answered.

use std::{net::IpAddr, time::SystemTime};

use anyhow::{Result, bail};
use log::warn;
use monitor_common::counters::BanEntry;

use super::tasks::Tasks;
use crate::{
    backend::Backend,
    config::{Config, MitigateMode},
    control::{self, ControlRequest, ControlSocket, Request},
    detect::Lists,
    mitigate::{Decision, Policy, never_dropped},
    model::{
        alert::{AlertEvent, Finding},
        ban::{BanEvent, UnbanEvent},
        cidr::CidrSet,
    },
};

/// The ban policy applied to the backend. The operator's control socket comes with it
/// from [`Mitigation::start`], for the polling loop to wait on.
pub(super) struct Mitigation {
    policy: Policy,
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Mitigation {
    /// `None` when mitigation is off; else the mitigation and its control socket. Fails
    /// when the backend cannot drop packets.
    pub(super) fn start(
        config: &Config,
        lists: &Lists,
        iface: &str,
        backend: &dyn Backend,
    ) -> Result<Option<(Self, ControlSocket)>> {
        if config.mitigate.mode == MitigateMode::Off {
            return Ok(None);
        }
        if !cfg!(target_os = "linux") {
            bail!(
                "--mitigate needs the xdp backend, which drops packets in the kernel and runs \
                 on Linux only; on this system the monitor only watches (run without --mitigate)"
            );
        }
        if !backend.can_mitigate() {
            bail!(
                "--mitigate needs the xdp backend, which drops packets in the kernel; the {} \
                 backend only watches (run without --mitigate, or with the xdp backend)",
                backend.name()
            );
        }
        let never_ban = CidrSet::new(never_dropped(config, lists));
        let mitigation = Self {
            policy: Policy::new(&config.mitigate, never_ban),
        };
        Ok(Some((mitigation, ControlSocket::listen(iface)?)))
    }

    /// One interval's findings: bans placed and ended.
    pub(super) fn on_findings(
        &mut self,
        findings: &[Finding],
        backend: &mut dyn Backend,
        now: SystemTime,
    ) -> Vec<AlertEvent> {
        let decisions = self.policy.update(findings, now);
        decisions
            .into_iter()
            .filter_map(|d| apply(d, backend))
            .collect()
    }

    /// Answers an operator request; an unban is also an event.
    pub(super) fn on_request(
        &mut self,
        request: ControlRequest,
        backend: &mut dyn Backend,
        now: SystemTime,
    ) -> Vec<AlertEvent> {
        let (answer, events) = match request.request {
            Request::List => (control::list_answer(self.policy.bans()), Vec::new()),
            Request::Unban(address) => self.unban(address, backend, now),
        };
        let _ = request.reply.send(answer);
        events
    }

    fn unban(
        &mut self,
        address: IpAddr,
        backend: &mut dyn Backend,
        now: SystemTime,
    ) -> (String, Vec<AlertEvent>) {
        match self.policy.unban(address.to_canonical(), now) {
            Some(decision) => (
                control::unban_answer(address, true),
                apply(decision, backend).into_iter().collect(),
            ),
            None => (control::unban_answer(address, false), Vec::new()),
        }
    }

    /// The monitor stops: the control socket closes (its accept task goes to `tasks`, to
    /// be ended with the rest), and every ban ends (the program leaves the interface).
    pub(super) fn finish(
        mut self,
        mut control: Option<ControlSocket>,
        now: SystemTime,
        tasks: &mut Tasks,
    ) -> Vec<AlertEvent> {
        if let Some(accept) = control.as_mut().and_then(ControlSocket::take_task) {
            tasks.own("the control socket", accept);
        }
        drop(control);
        self.policy
            .finish(now)
            .into_iter()
            .filter_map(|decision| match decision {
                Decision::Unban { ban, reason, at } => {
                    Some(AlertEvent::Unban(UnbanEvent::new(&ban, reason, at)))
                }
                _ => None,
            })
            .collect()
    }
}

/// Puts a decision into the kernel; the event to report, if any.
fn apply(decision: Decision, backend: &mut dyn Backend) -> Option<AlertEvent> {
    match decision {
        Decision::Ban(ban) => {
            let entry = BanEntry {
                since_unix_secs: seconds(ban.since),
                until_unix_secs: seconds(ban.until),
                reason: ban.reason as u32,
                dry_run: u32::from(ban.dry_run),
            };
            if let Err(err) = backend.ban(ban.address, entry) {
                warn!("{err:#}");
            }
            Some(AlertEvent::Ban(BanEvent::new(&ban)))
        }
        Decision::Unban { ban, reason, at } => {
            if let Err(err) = backend.unban(ban.address) {
                warn!("{err:#}");
            }
            Some(AlertEvent::Unban(UnbanEvent::new(&ban, reason, at)))
        }
        Decision::CapReached { address, max_bans } => {
            warn!(
                "{max_bans} bans in place (mitigate.max_bans): {address} and further confirmed \
                 floods are not banned until a ban ends; the host-wide alerts still apply"
            );
            None
        }
    }
}
