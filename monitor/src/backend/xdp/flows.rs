//! Large flows: the kernel reports a flow once, when its inbound payload reaches the
//! threshold (`LARGE_FLOWS` ring); from then on userspace follows its counters in FLOWS
//! until it goes quiet or is evicted.

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData, RingBuf},
};
use monitor_common::{
    SourceKey,
    counters::{FlowCounters, FlowKey, LargeFlowEvent},
    names,
};

use super::clock::MonotonicToWall;
use crate::{backend::QUIET_FLOW, model::snapshot::FlowTotals};

/// The flows the kernel reported as large, followed.
pub(super) struct FollowedFlows {
    events: RingBuf<MapData>,
    /// Each flow's counters, with when they last grew.
    followed: HashMap<FlowKey, (FlowCounters, Instant, SystemTime)>,
}

impl FollowedFlows {
    /// Takes the `LARGE_FLOWS` ring out of `ebpf`.
    pub(super) fn new(ebpf: &mut Ebpf) -> Result<Self> {
        let events = RingBuf::try_from(
            ebpf.take_map(names::LARGE_FLOWS)
                .context("map LARGE_FLOWS missing")?,
        )?;
        Ok(Self {
            events,
            followed: HashMap::new(),
        })
    }

    /// New ones from the ring buffer, then the current counters of every flow
    /// followed, letting go of those gone quiet or evicted.
    pub(super) fn update(&mut self, ebpf: &Ebpf) -> Result<Vec<FlowTotals>> {
        let now = Instant::now();
        while let Some(item) = self.events.next() {
            if item.len() < size_of::<LargeFlowEvent>() {
                continue;
            }
            // SAFETY: the program writes a LargeFlowEvent, a plain-old-data struct.
            let event: LargeFlowEvent =
                unsafe { item.as_ptr().cast::<LargeFlowEvent>().read_unaligned() };
            self.followed
                .insert(event.key, (event.counters, now, SystemTime::now()));
        }
        let flows: BpfHashMap<_, FlowKey, FlowCounters> = ebpf
            .map(names::FLOWS)
            .context("map FLOWS missing")?
            .try_into()?;
        self.followed
            .retain(|key, (counters, grew, grew_wall)| match flows.get(key, 0) {
                Ok(current) => {
                    if current.payload_bytes != counters.payload_bytes {
                        *counters = current;
                        *grew = now;
                        *grew_wall = SystemTime::now();
                    }
                    now.duration_since(*grew) < QUIET_FLOW
                }
                Err(_) => false,
            });
        Ok(self
            .followed
            .iter()
            .map(|(key, (counters, _, grew_wall))| flow_totals(key, counters, *grew_wall))
            .collect())
    }
}

fn flow_totals(key: &FlowKey, counters: &FlowCounters, last_grew: SystemTime) -> FlowTotals {
    let ip = |addr: &monitor_common::Addr| SourceKey { addr: *addr }.ip();
    FlowTotals {
        protocol: key.protocol,
        src: SocketAddr::new(ip(&key.src), key.src_port),
        dst: SocketAddr::new(ip(&key.dst), key.dst_port),
        payload_bytes: counters.payload_bytes,
        packets: counters.packets,
        first_seen: MonotonicToWall::now().at(counters.first_seen_ns),
        last_grew,
    }
}
